"""Audience changes derived from membership: what the engine last sent per audience.

- ``audience_sent_members``: per exported audience, the customers the engine last handed to
  the delivery path as members (``true``); the membership diff compares
  ``audience_members`` against it;
- ``audience_diffs``: one row per audience the diff has taken over (its baseline seeded),
  locked by the run that diffs it, with the counts of the last diff.

Frozen DDL: later schema changes get a new revision, never an edit here.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "audience_sent_members",
        sa.Column("audience", sa.String(200), nullable=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("audience", "customer_id", name="pk_audience_sent_members"),
    )
    op.create_table(
        "audience_diffs",
        sa.Column("audience", sa.String(200), nullable=False),
        sa.Column("generation", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("seeded_at", TIME, nullable=False),
        sa.Column("diffed_at", TIME),
        sa.Column("enters", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("exits", sa.BigInteger(), nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("audience", name="pk_audience_diffs"),
    )


def downgrade() -> None:
    op.drop_table("audience_diffs")
    op.drop_table("audience_sent_members")
