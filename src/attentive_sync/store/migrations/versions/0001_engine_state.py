"""Engine state: delta and event queues, bulk jobs, quarantine, accepted attributes,
backfill checkpoints, notices sent.

Frozen DDL: later schema changes get a new revision, never an edit here.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
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
SOURCE_KINDS = "source_kind IN ('delta', 'backfill', 'event', 'notice', 'profile')"
JOB_KINDS = (
    "kind IN ('audience_backfill', 'audience_incremental', 'loyalty_profile', "
    "'reward_reminder', 'expiry_notice')"
)


def _queue_columns() -> list[sa.Column]:
    return [
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
    ]


def _create_queue(name: str, key: str, *extra: sa.Column | sa.CheckConstraint) -> None:
    op.create_table(
        name,
        sa.Column("seq", ROW_ID, autoincrement=True, nullable=False),
        sa.Column(key, sa.String(200), nullable=False),
        *extra,
        *_queue_columns(),
        sa.PrimaryKeyConstraint("seq", name=f"pk_{name}"),
        sa.UniqueConstraint(key, name=f"uq_{name}_{key}"),
        sa.CheckConstraint(STATES, name=f"ck_{name}_state"),
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


def upgrade() -> None:
    _create_queue(
        "audience_deltas",
        "delta_key",
        sa.Column("audience", sa.String(200), nullable=False),
        sa.Column("action", sa.String(8), nullable=False),
        sa.CheckConstraint("action IN ('enter', 'exit')", name="ck_audience_deltas_action"),
    )
    _create_queue(
        "loyalty_events",
        "event_id",
        sa.Column("topic", sa.String(64), nullable=False),
        sa.Column("payload", JSON, nullable=False),
    )
    op.create_table(
        "bulk_jobs",
        sa.Column("job_id", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("submitted_at", TIME, nullable=False),
        sa.Column("finished_at", TIME),
        sa.Column("record_count", sa.Integer(), nullable=False),
        sa.Column("accepted", sa.Integer()),
        sa.Column("rejected", sa.Integer()),
        sa.Column("settled", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("run_label", sa.String(200)),
        sa.PrimaryKeyConstraint("job_id", name="pk_bulk_jobs"),
        sa.CheckConstraint(JOB_KINDS, name="ck_bulk_jobs_kind"),
    )
    op.create_index("ix_bulk_jobs_settled_kind", "bulk_jobs", ["settled", "kind"])
    op.create_table(
        "bulk_job_items",
        sa.Column("job_id", sa.String(200), nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("source_kind", sa.String(16), nullable=False),
        sa.Column("source_ref", sa.String(200), nullable=False),
        sa.Column("attributes", JSON, nullable=False),
        sa.PrimaryKeyConstraint("job_id", "idx", name="pk_bulk_job_items"),
        sa.CheckConstraint(SOURCE_KINDS, name="ck_bulk_job_items_source_kind"),
    )
    op.create_index("ix_bulk_job_items_source", "bulk_job_items", ["source_kind", "source_ref"])
    op.create_table(
        "quarantine",
        sa.Column("id", ROW_ID, autoincrement=True, nullable=False),
        sa.Column("source_kind", sa.String(16), nullable=False),
        sa.Column("source_ref", sa.String(200), nullable=False),
        sa.Column("customer_id", sa.BigInteger()),
        sa.Column("reason_code", sa.String(64), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("payload_masked", JSON),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("replayed_at", TIME),
        sa.PrimaryKeyConstraint("id", name="pk_quarantine"),
        sa.CheckConstraint(SOURCE_KINDS, name="ck_quarantine_source_kind"),
    )
    op.create_index("ix_quarantine_reason_code", "quarantine", ["reason_code", "replayed_at"])
    op.create_table(
        "accepted_attributes",
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("value", JSON),
        sa.Column("job_id", sa.String(200), nullable=False),
        sa.Column("accepted_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("customer_id", "name", name="pk_accepted_attributes"),
    )
    op.create_table(
        "backfill_checkpoints",
        sa.Column("run_key", sa.String(200), nullable=False),
        sa.Column("audience", sa.String(200), nullable=False),
        sa.Column("last_customer_id", sa.BigInteger(), nullable=False),
        sa.Column("members_read", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("run_key", "audience", name="pk_backfill_checkpoints"),
    )
    op.create_table(
        "notices_sent",
        sa.Column("id", ROW_ID, autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("period_key", sa.String(64), nullable=False),
        sa.Column("sent_at", TIME, nullable=False),
        sa.Column("event_id", sa.String(200)),
        sa.PrimaryKeyConstraint("id", name="pk_notices_sent"),
        sa.UniqueConstraint(
            "kind", "customer_id", "period_key", name="uq_notices_sent_kind_customer_id_period_key"
        ),
    )


def downgrade() -> None:
    for table in (
        "notices_sent",
        "backfill_checkpoints",
        "accepted_attributes",
        "quarantine",
        "bulk_job_items",
        "bulk_jobs",
        "loyalty_events",
        "audience_deltas",
    ):
        op.drop_table(table)
