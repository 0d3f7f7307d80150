"""Queue job documents: a job of queue rows keeps its items as one document.

- ``bulk_job_documents``: one row per job that carries rows of one queue (an incremental
  run's deltas, attribute writes), its records in request order as one JSON document,
  instead of one ``bulk_job_items`` row per record. While such a job is unsettled, the
  queue rows it carries are ``inflight`` under its id, and say whom it carries.

A downgrade writes the documents back as ``bulk_job_items`` rows (before this revision, an
unsettled job's items held its customers), so nothing is lost.

Frozen DDL: later schema changes get a new revision, never an edit here.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bulk_job_documents",
        sa.Column("job_id", sa.String(200), nullable=False),
        sa.Column("records", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("job_id", name="pk_bulk_job_documents"),
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
    documents = conn.execute(sa.text("SELECT job_id, records FROM bulk_job_documents")).all()
    for job_id, text in documents:
        document = json.loads(text)
        kind, shared = document["kind"], document["attributes"]
        rows = [
            {
                "job_id": job_id,
                "idx": idx,
                "customer_id": cid,
                "source_kind": kind,
                "source_ref": str(seq),
                "attributes": shared[which],
            }
            for idx, (cid, seq, which) in enumerate(document["records"])
        ]
        if rows:
            conn.execute(_ITEMS.insert(), rows)
    op.drop_table("bulk_job_documents")
