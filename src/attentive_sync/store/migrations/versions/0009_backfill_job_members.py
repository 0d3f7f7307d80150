"""Backfill job members: a backfill job keeps its members as one document.

- ``backfill_job_members``: one row per backfill job (its run, the first and last customer
  id it carries, and its members in request order as one JSON document), instead of one
  ``bulk_job_items`` row per member. While such a job is unsettled, a range hold in
  ``customer_holds`` (holder ``job:<job id>``) holds its customers.

A downgrade writes the documents back as ``bulk_job_items`` rows and ends those range holds
(before this revision, an unsettled job's items held its customers), so nothing is lost.

Frozen DDL: later schema changes get a new revision, never an edit here.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "backfill_job_members",
        sa.Column("job_id", sa.String(200), nullable=False),
        sa.Column("run_key", sa.String(200), nullable=False),
        sa.Column("first_customer", sa.BigInteger(), nullable=False),
        sa.Column("last_customer", sa.BigInteger(), nullable=False),
        sa.Column("members", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("job_id", name="pk_backfill_job_members"),
    )
    op.create_index(
        "ix_backfill_job_members_run",
        "backfill_job_members",
        ["run_key", "last_customer", "first_customer"],
    )


_ITEMS = sa.table(
    "bulk_job_items",
    sa.column("job_id", sa.String),
    sa.column("idx", sa.Integer),
    sa.column("customer_id", sa.BigInteger),
    sa.column("source_kind", sa.String),
    sa.column("source_ref", sa.String),
    sa.column("attributes", sa.JSON().with_variant(JSONB(), "postgresql")),
)


def downgrade() -> None:
    conn = op.get_bind()
    documents = conn.execute(
        sa.text("SELECT job_id, run_key, first_customer, members FROM backfill_job_members")
    ).all()
    for job_id, run_key, first, text in documents:
        document = json.loads(text)
        shared = document["attributes"]
        rows = [
            {
                "job_id": job_id,
                "idx": idx,
                "customer_id": cid,
                "source_kind": "backfill",
                "source_ref": f"{run_key}|{listed}|{cid}",
                "attributes": shared[which],
            }
            for idx, (cid, listed, which) in enumerate(document["members"])
        ]
        if rows:
            conn.execute(_ITEMS.insert(), rows)
        conn.execute(
            sa.text(
                "DELETE FROM customer_holds WHERE holder = :holder AND customer_id = :first"
                " AND through IS NOT NULL"
            ),
            {"holder": f"job:{job_id}"[:200], "first": first},
        )
    op.drop_index("ix_backfill_job_members_run", "backfill_job_members")
    op.drop_table("backfill_job_members")
