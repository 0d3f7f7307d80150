"""Range holds: one hold row may name a range of customer ids.

- ``customer_holds.through``: when set, the row holds every customer id from
  ``customer_id`` to ``through``; a backfill holds a page's batches this way (one row)
  between their checks and their sends, instead of one row per member.

Frozen DDL: later schema changes get a new revision, never an edit here.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

RANGES = "through IS NOT NULL"


def upgrade() -> None:
    with op.batch_alter_table("customer_holds") as batch:
        batch.add_column(sa.Column("through", sa.BigInteger()))
    predicate = sa.text(RANGES)
    op.create_index(
        "ix_customer_holds_through",
        "customer_holds",
        ["through"],
        sqlite_where=predicate,
        postgresql_where=predicate,
    )


def downgrade() -> None:
    op.drop_index("ix_customer_holds_through", "customer_holds")
    # A range would otherwise shrink to its first customer.
    op.execute(sa.text(f"DELETE FROM customer_holds WHERE {RANGES}"))
    with op.batch_alter_table("customer_holds") as batch:
        batch.drop_column("through")
