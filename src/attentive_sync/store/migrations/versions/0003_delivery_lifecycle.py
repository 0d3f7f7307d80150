"""Delivery lifecycle: the attribute writes queue, customer holds, owned settlement.

- ``attribute_writes``: profile and notice attributes, queued like deltas, so a write
  that fails is sent again by state (attempts, backoff, then the quarantine);
- ``customer_holds``: customers whose next write must wait (a submission whose fate is
  unknown, a backfill batch about to be sent);
- ``bulk_jobs.settle_owner`` / ``settle_expires_at``: one run settles a given job;
- ``bulk_job_items`` by customer: the customers an unfinished job carries.

Frozen DDL: later schema changes get a new revision, never an edit here.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(JSONB(), "postgresql")
TIME = sa.DateTime(timezone=True)
TAKEABLE = "state IN ('pending', 'leased')"
UNFINISHED = "state IN ('pending', 'leased', 'inflight')"
HELD = "state IN ('leased', 'inflight')"
WAITING = "state IN ('pending')"
INFLIGHT = "state IN ('inflight')"
STATES = "state IN ('pending', 'leased', 'inflight', 'done', 'quarantined')"
OLD_SOURCE_KINDS = "source_kind IN ('delta', 'backfill', 'event', 'notice', 'profile')"
SOURCE_KINDS = "source_kind IN ('delta', 'backfill', 'event', 'notice', 'profile', 'write')"


def _source_kinds(check: str) -> None:
    for table in ("bulk_job_items", "quarantine"):
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(f"ck_{table}_source_kind", type_="check")
            batch.create_check_constraint(f"ck_{table}_source_kind", sa.text(check))


def upgrade() -> None:
    name = "attribute_writes"
    op.create_table(
        name,
        sa.Column("seq", ROW_ID, autoincrement=True, nullable=False),
        sa.Column("write_key", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("attributes", JSON, nullable=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("occurred_at", TIME, nullable=False),
        sa.Column("enqueued_at", TIME, nullable=False),
        sa.Column("state", sa.String(16), nullable=False, server_default="pending"),
        sa.Column("lease_owner", sa.String(200)),
        sa.Column("lease_expires_at", TIME),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("next_attempt_at", TIME, nullable=False),
        sa.Column("job_id", sa.String(200)),
        sa.Column("last_error", sa.Text()),
        sa.PrimaryKeyConstraint("seq", name=f"pk_{name}"),
        sa.UniqueConstraint("write_key", name=f"uq_{name}_write_key"),
        sa.CheckConstraint(STATES, name=f"ck_{name}_state"),
        sa.CheckConstraint(
            "kind IN ('profile', 'reward_reminder', 'expiry_notice')", name=f"ck_{name}_kind"
        ),
    )
    for index, columns, where in (
        (f"ix_{name}_open", ["seq"], TAKEABLE),
        (f"ix_{name}_held", ["customer_id"], HELD),
        (f"ix_{name}_retry", ["next_attempt_at"], WAITING),
        (f"ix_{name}_customer", ["customer_id", "seq"], UNFINISHED),
        (f"ix_{name}_job", ["job_id"], INFLIGHT),
    ):
        predicate = sa.text(where)
        op.create_index(index, name, columns, sqlite_where=predicate, postgresql_where=predicate)
    op.create_table(
        "customer_holds",
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("holder", sa.String(200), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("until", TIME, nullable=False),
        sa.PrimaryKeyConstraint("customer_id", "holder", name="pk_customer_holds"),
    )
    op.create_index("ix_customer_holds_until", "customer_holds", ["until"])
    with op.batch_alter_table("bulk_jobs") as batch:
        batch.add_column(sa.Column("settle_owner", sa.String(200)))
        batch.add_column(sa.Column("settle_expires_at", TIME))
    op.create_index("ix_bulk_job_items_customer_id", "bulk_job_items", ["customer_id"])
    _source_kinds(SOURCE_KINDS)


def downgrade() -> None:
    _source_kinds(OLD_SOURCE_KINDS)
    op.drop_index("ix_bulk_job_items_customer_id", "bulk_job_items")
    with op.batch_alter_table("bulk_jobs") as batch:
        batch.drop_column("settle_expires_at")
        batch.drop_column("settle_owner")
    op.drop_table("customer_holds")
    op.drop_table("attribute_writes")
