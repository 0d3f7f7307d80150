"""Rate-limit buckets shared by every worker of one API key (PostgreSQL stores).

- ``rate_limit_buckets``: one row per (key fingerprint, endpoint group): the next free
  send slot, in seconds since the epoch on the database's clock.

Frozen DDL: later schema changes get a new revision, never an edit here.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rate_limit_buckets",
        sa.Column("bucket", sa.String(64), nullable=False),
        sa.Column("next_slot", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("bucket", name="pk_rate_limit_buckets"),
    )


def downgrade() -> None:
    op.drop_table("rate_limit_buckets")
