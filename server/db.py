"""The database of styles and batch jobs: embedded SQLite by default, PostgreSQL when replicas share one.

One SQLAlchemy Core layer serves both, so every query is written once. The schema is owned by the Alembic
migrations in `server/migrations/` (forward only), applied by `open_database()` at startup; the tables below mirror their result
for the queries. SQLite keeps the behaviour of the raw-sqlite3 store it replaced: WAL, a busy timeout for other
processes, and write transactions that take the write lock when they begin (BEGIN IMMEDIATE), so two writers
queue instead of failing half-way with "database is locked".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# Execution option for read-only work: on SQLite a plain (deferred) BEGIN, which never waits for the write lock.
READ_ONLY = {"collage_read_only": True}
SQLITE_BUSY_TIMEOUT_S = 30.0
# Any constant shared by all replicas: the key of the PostgreSQL advisory lock that lets one replica migrate at a
# time when several start together.
_MIGRATION_LOCK = 0x636F6C6C

metadata = sa.MetaData()

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("model", sa.Text, nullable=False),
    sa.Column("fmt", sa.Text, nullable=False),
    sa.Column("quality", sa.Integer, nullable=False),
    sa.Column("collage", sa.Integer, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("total", sa.Integer, nullable=False),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("updated", sa.Float, nullable=False),
    sa.Column("error", sa.Text),
    sa.Column("owner", sa.Text),  # the replica holding the lease; NULL when nobody runs the job
    sa.Column("lease_until", sa.Float),  # unix time the owner's lease ends unless renewed
    sa.Index("jobs_status_created", "status", "created"),
)

items = sa.Table(
    "items",
    metadata,
    sa.Column("job_id", sa.String(32), primary_key=True),
    sa.Column("idx", sa.Integer, primary_key=True),
    sa.Column("seed", sa.BigInteger),  # seeds go up to 2^63-1
    sa.Column("style", sa.Text, nullable=False),
    sa.Column("z", sa.LargeBinary, nullable=False),  # float32 bytes
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("error", sa.Text),
    sa.Column("render_ms", sa.Float),
    # Who rendered a done item: its result waits as `<idx>.<ext>.<attempt>.tmp` until renamed into place.
    sa.Column("attempt", sa.Text),
)

styles = sa.Table(
    "styles",
    metadata,
    sa.Column("style_id", sa.String(20), primary_key=True),
    sa.Column("model", sa.Text, nullable=False),
    sa.Column("z", sa.LargeBinary, nullable=False),  # float32 bytes
    sa.Column("created", sa.Float, nullable=False),
)


def database_url(setting: str | None, data_dir: Path) -> sa.URL:
    """The URL to open: the setting, or the embedded SQLite file the server has always used.

    `postgresql://` (and `postgres://`) URLs get the psycopg 3 driver: SQLAlchemy would otherwise pick psycopg2,
    which this project does not install.
    """
    if not setting:
        return sa.URL.create("sqlite", database=str(data_dir / "jobs" / "jobs.sqlite"))
    url = sa.make_url(setting)
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    return url


def _sqlite_hooks(engine: sa.Engine) -> None:
    """pysqlite's own transaction handling defers BEGIN to the first write and cannot BEGIN IMMEDIATE; the
    SQLAlchemy documentation's remedy is to switch it off and emit BEGIN from the `begin` event."""

    @sa.event.listens_for(engine, "connect")
    def connect(dbapi_connection: Any, _record: object) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")  # readers never wait for the writer
        cursor.execute("PRAGMA synchronous=NORMAL")  # durable across process crashes, which is what we face
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def begin(connection: sa.Connection) -> None:
        read_only = connection.get_execution_options().get("collage_read_only", False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def create_engine(url: sa.URL) -> sa.Engine:
    """An engine for `url`; a PostgreSQL URL without psycopg installed says which extra brings it."""
    if url.get_backend_name() == "sqlite":
        if url.database:
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})
        _sqlite_hooks(engine)
        return engine
    if url.get_backend_name() != "postgresql":
        raise RuntimeError(
            f"COLLAGE_DATABASE_URL must name SQLite or PostgreSQL, not {url.get_backend_name()}"
        )
    try:
        return sa.create_engine(url, pool_pre_ping=True)  # replicas outlive database restarts
    except ImportError as exc:
        raise RuntimeError(
            f"COLLAGE_DATABASE_URL names {url.get_backend_name()} through {url.get_driver_name()}, which is not "
            f"installed ({exc}); install the scale extra: pip install 'collage-studio[scale]'"
        ) from None


def migrate(engine: sa.Engine) -> None:
    """Bring the schema to the newest revision, in one transaction; replicas starting together take turns."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def open_database(url: sa.URL) -> sa.Engine:
    """The engine of a database migrated to the current schema."""
    engine = create_engine(url)
    try:
        migrate(engine)
    except BaseException:
        engine.dispose()
        raise
    return engine
