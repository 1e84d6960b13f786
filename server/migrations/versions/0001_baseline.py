"""The schema of the servers before migrations: jobs and their items.

Data dirs of those versions already hold these tables in `jobs/jobs.sqlite` (and no alembic_version), so only a
missing table is created; an existing one is adopted as it is.

Revision ID: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if "jobs" not in existing:
        op.create_table(
            "jobs",
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
        )
    if "items" not in existing:
        op.create_table(
            "items",
            sa.Column("job_id", sa.String(32), primary_key=True),
            sa.Column("idx", sa.Integer, primary_key=True),
            sa.Column("seed", sa.BigInteger),
            sa.Column("style", sa.Text, nullable=False),
            sa.Column("z", sa.LargeBinary, nullable=False),
            sa.Column("status", sa.Text, nullable=False),
            sa.Column("error", sa.Text),
            sa.Column("render_ms", sa.Float),
        )
