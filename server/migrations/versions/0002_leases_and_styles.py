"""Replicas: a job's lease (owner, lease_until), the attempt that rendered each done item, and the uploaded
styles, which lived in JSON files before.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("owner", sa.Text))
    op.add_column("jobs", sa.Column("lease_until", sa.Float))
    op.add_column("items", sa.Column("attempt", sa.Text))
    # The runner looks for the oldest unfinished job on every poll.
    op.create_index("jobs_status_created", "jobs", ["status", "created"])
    op.create_table(
        "styles",
        sa.Column("style_id", sa.String(20), primary_key=True),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("z", sa.LargeBinary, nullable=False),
        sa.Column("created", sa.Float, nullable=False),
    )
