"""A throwaway PostgreSQL server for the tests: Debian's binaries, a data dir under tmp, one database per test.

initdb and postgres refuse to run as root, which is what the tests run as, so both run as the `postgres` system
user (the Debian package creates it; subprocess switches to it, and signals reach postgres itself) in a folder of /tmp handed to that user: pytest's own tmp folders are
private to root. The server listens on a free port on 127.0.0.1 with trust authentication, and its unix socket
sits in that folder, never in /var/run.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg

INSTALL_HINT = (
    "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): run `make postgresql` (or "
    "`apt-get install postgresql`); set COLLAGE_TEST_NO_POSTGRES=1 to skip the tests that need it"
)


def find_bin() -> Path | None:
    """The newest installed version's bin folder."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    """One server for a test session; `new_database()` gives each test a database of its own."""

    def __init__(self, bin_dir: Path) -> None:
        self.root = root = Path(tempfile.mkdtemp(prefix="collage-postgres-"))
        self.port = _free_port()
        data, sockets = root / "data", root / "run"
        sockets.mkdir()
        for path in (root, sockets):
            shutil.chown(path, "postgres", "postgres")
        as_postgres: dict[str, Any] = {"user": "postgres", "group": "postgres"}
        initdb = [str(bin_dir / "initdb"), "-D", str(data), *"-U postgres -A trust -E UTF8".split()]
        subprocess.run(initdb, check=True, capture_output=True, **as_postgres)
        # Durability off: a test database never outlives its session, and fsync would dominate its run time.
        options = "fsync=off synchronous_commit=off full_page_writes=off max_connections=300".split()
        server = [str(bin_dir / "postgres"), "-D", str(data), "-h", "127.0.0.1", "-p", str(self.port)]
        self._log = (root / "postgres.log").open("ab")
        self.proc = subprocess.Popen(
            [*server, "-k", str(sockets), *(arg for option in options for arg in ("-c", option))],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            **as_postgres,
        )
        self._wait_ready()

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited: {(self.root / 'postgres.log').read_text()}")
            try:
                with psycopg.connect(self.url(), connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def new_database(self) -> str:
        """The URL of a new empty database."""
        name = f"test_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")  # a fresh hex name: nothing to quote
        return self.url(name)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)  # a "fast" shutdown: disconnect the clients, stop
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(15)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._log.close()
        shutil.rmtree(self.root, ignore_errors=True)


def skip_reason() -> str | None:
    """Why the PostgreSQL tests may skip: only when asked to, by COLLAGE_TEST_NO_POSTGRES=1."""
    if os.environ.get("COLLAGE_TEST_NO_POSTGRES") == "1":
        return "COLLAGE_TEST_NO_POSTGRES=1"
    return None
