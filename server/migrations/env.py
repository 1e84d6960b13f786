"""Alembic's entry point. `server.db.migrate()` hands over its connection (inside its transaction), so the
migrations run on the engine the server configured: SQLite's BEGIN IMMEDIATE, PostgreSQL's advisory lock."""

from __future__ import annotations

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run the migrations through server.db.migrate(), which opens the database")
context.configure(connection=connection)
with context.begin_transaction():
    context.run_migrations()
