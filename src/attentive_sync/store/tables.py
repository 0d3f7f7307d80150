"""The engine's durable state, as SQLAlchemy Core tables.

These definitions are what the code queries; ``migrations/versions/0001_engine_state.py``
is the frozen DDL that creates them. ``tests/store/test_db.py`` proves the two agree.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Double,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.schema import SchemaItem

from attentive_sync.store.types import JsonValue, RowId, UtcDateTime

QUEUE_STATES: tuple[str, ...] = ("pending", "leased", "inflight", "done", "quarantined")
# A row a lease may take: pending and due, or leased with an expired lease.
TAKEABLE_STATES: tuple[str, ...] = ("pending", "leased")
# A row whose change has not reached Attentive yet.
UNFINISHED_STATES: tuple[str, ...] = ("pending", "leased", "inflight")
# The longest ``source_ref`` a job item or a quarantine entry holds.
REF_LENGTH = 200
# Rows that hold their customer back: held by a worker or a job, or waiting for a retry.
HELD_STATES: tuple[str, ...] = ("leased", "inflight")
WAITING_STATES: tuple[str, ...] = ("pending",)
INFLIGHT_STATES: tuple[str, ...] = ("inflight",)
DELTA_ACTIONS: tuple[str, ...] = ("enter", "exit")
JOB_KINDS: tuple[str, ...] = (
    "audience_backfill",
    "audience_incremental",
    "loyalty_profile",
    "reward_reminder",
    "expiry_notice",
)
SOURCE_KINDS: tuple[str, ...] = ("delta", "backfill", "event", "notice", "profile", "write")
# What an attribute write carries: a customer's loyalty profile, or one notice's figures. A
# later write of the same customer and kind overtakes an earlier one (same attributes).
WRITE_KINDS: tuple[str, ...] = ("profile", "reward_reminder", "expiry_notice")

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _partial_index(name: str, states: tuple[str, ...], *columns: str) -> Index:
    where = text(_one_of("state", states))
    return Index(name, *columns, sqlite_where=where, postgresql_where=where)


def _queue_columns() -> list[Column]:
    """The lease bookkeeping both queues share; ``Queue`` relies on exactly these names."""
    return [
        Column("customer_id", BigInteger, nullable=False),
        Column("occurred_at", UtcDateTime, nullable=False),
        Column("enqueued_at", UtcDateTime, nullable=False),
        Column("state", String(16), nullable=False, server_default="pending"),
        Column("lease_owner", String(200)),
        Column("lease_expires_at", UtcDateTime),
        Column("attempts", Integer, nullable=False, server_default="0"),
        Column("next_attempt_at", UtcDateTime, nullable=False),
        Column("job_id", String(200)),
        Column("last_error", Text),
    ]


def _queue_table(name: str, key: Column, *extra: SchemaItem) -> Table:
    """A queue table whose ``seq`` is the queue order and ``key`` makes enqueue idempotent."""
    return Table(
        name,
        metadata,
        Column("seq", RowId, primary_key=True, autoincrement=True),
        key,
        *extra,
        *_queue_columns(),
        CheckConstraint(_one_of("state", QUEUE_STATES), name="state"),
        # Partial indexes: done rows pile up forever and no lease query should walk them.
        # open: the lease scan, takeable rows in queue order. held and retry: the few
        # customers a lease must skip, found without reading the whole backlog.
        # customer: the ordering re-check of a customer's unfinished rows. job: the rows
        # an unsettled job carries.
        _partial_index(f"ix_{name}_open", TAKEABLE_STATES, "seq"),
        _partial_index(f"ix_{name}_held", HELD_STATES, "customer_id"),
        _partial_index(f"ix_{name}_retry", WAITING_STATES, "next_attempt_at"),
        _partial_index(f"ix_{name}_customer", UNFINISHED_STATES, "customer_id", "seq"),
        _partial_index(f"ix_{name}_job", INFLIGHT_STATES, "job_id"),
    )


audience_deltas = _queue_table(
    "audience_deltas",
    Column("delta_key", String(200), nullable=False, unique=True),
    Column("audience", String(200), nullable=False),
    Column("action", String(8), nullable=False),
    CheckConstraint(_one_of("action", DELTA_ACTIONS), name="action"),
)

loyalty_events = _queue_table(
    "loyalty_events",
    Column("event_id", String(200), nullable=False, unique=True),
    Column("topic", String(64), nullable=False),
    Column("payload", JsonValue, nullable=False),
)

attribute_writes = _queue_table(
    "attribute_writes",
    Column("write_key", String(200), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),
    Column("attributes", JsonValue, nullable=False),
    CheckConstraint(_one_of("kind", WRITE_KINDS), name="kind"),
)

# Customers whose next write must wait: a submission whose fate is unknown (it may still
# land at Attentive), a job whose rows cannot hold its customers, or a backfill page's
# batches between their checks and their sends. A row names ``customer_id`` alone, or,
# with ``through``, every customer id from ``customer_id`` to ``through`` (a range).
customer_holds = Table(
    "customer_holds",
    metadata,
    Column("customer_id", BigInteger, primary_key=True),
    Column("holder", String(200), primary_key=True),
    Column("reason", String(32), nullable=False),
    Column("until", UtcDateTime, nullable=False),
    Column("through", BigInteger),
    Index("ix_customer_holds_until", "until"),
    # The few range holds, found by their upper end.
    Index(
        "ix_customer_holds_through",
        "through",
        sqlite_where=text("through IS NOT NULL"),
        postgresql_where=text("through IS NOT NULL"),
    ),
)

bulk_jobs = Table(
    "bulk_jobs",
    metadata,
    Column("job_id", String(200), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("status", String(32), nullable=False),
    Column("submitted_at", UtcDateTime, nullable=False),
    Column("finished_at", UtcDateTime),
    Column("record_count", Integer, nullable=False),
    Column("accepted", Integer),
    Column("rejected", Integer),
    Column("settled", Boolean, nullable=False, server_default=false()),
    Column("run_label", String(200)),
    Column("settle_owner", String(200)),
    Column("settle_expires_at", UtcDateTime),
    CheckConstraint(_one_of("kind", JOB_KINDS), name="kind"),
    Index("ix_bulk_jobs_settled_kind", "settled", "kind"),
)

bulk_job_items = Table(
    "bulk_job_items",
    metadata,
    Column("job_id", String(200), primary_key=True),
    Column("idx", Integer, primary_key=True),
    Column("customer_id", BigInteger, nullable=False),
    Column("source_kind", String(16), nullable=False),
    Column("source_ref", String(REF_LENGTH), nullable=False),
    Column("attributes", JsonValue, nullable=False),
    CheckConstraint(_one_of("source_kind", SOURCE_KINDS), name="source_kind"),
    # A resumed run asks which records a recorded job already carries.
    Index("ix_bulk_job_items_source", "source_kind", "source_ref"),
    # The customers an unfinished job carries: their next write waits for it.
    Index("ix_bulk_job_items_customer_id", "customer_id"),
)

# A backfill job's members, as one document (``jobs.record_job``): a row per member cost
# more to write than everything else of a backfill. Found by run and customer range; while
# the job is unsettled, a range hold (``customer_holds``) holds its customers.
backfill_job_members = Table(
    "backfill_job_members",
    metadata,
    Column("job_id", String(200), primary_key=True),
    Column("run_key", String(REF_LENGTH), nullable=False),
    Column("first_customer", BigInteger, nullable=False),
    Column("last_customer", BigInteger, nullable=False),
    Column("members", Text, nullable=False),
    Index("ix_backfill_job_members_run", "run_key", "last_customer", "first_customer"),
)

# A queue job's items, as one document (``jobs.record_job``): the job's queue rows say whom
# it carries while it is unsettled (``inflight`` under its id), so nothing looks its items
# up by customer or ref.
bulk_job_documents = Table(
    "bulk_job_documents",
    metadata,
    Column("job_id", String(200), primary_key=True),
    Column("records", Text, nullable=False),
)

# The queues whose rows bulk jobs carry: a row ``inflight`` there is carried by a job not
# settled yet, so its customer's other writes wait for that job.
JOB_QUEUES: tuple[Table, ...] = (audience_deltas, attribute_writes)

quarantine = Table(
    "quarantine",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("source_kind", String(16), nullable=False),
    Column("source_ref", String(REF_LENGTH), nullable=False),
    Column("customer_id", BigInteger),
    Column("reason_code", String(64), nullable=False),
    Column("detail", Text, nullable=False),
    Column("payload_masked", JsonValue),
    Column("created_at", UtcDateTime, nullable=False),
    Column("replayed_at", UtcDateTime),
    CheckConstraint(_one_of("source_kind", SOURCE_KINDS), name="source_kind"),
    Index("ix_quarantine_reason_code", "reason_code", "replayed_at"),
)

accepted_attributes = Table(
    "accepted_attributes",
    metadata,
    Column("customer_id", BigInteger, primary_key=True),
    Column("name", String(200), primary_key=True),
    Column("value", JsonValue),
    Column("job_id", String(200), nullable=False),
    Column("accepted_at", UtcDateTime, nullable=False),
)

# Per exported audience, the customers the engine last handed to the delivery path as
# members: the baseline the membership diff compares ``audience_members`` against.
audience_sent_members = Table(
    "audience_sent_members",
    metadata,
    Column("audience", String(200), primary_key=True),
    Column("customer_id", BigInteger, primary_key=True),
)

# One row per audience the diff has taken over; the run that diffs an audience locks it.
audience_diffs = Table(
    "audience_diffs",
    metadata,
    Column("audience", String(200), primary_key=True),
    Column("generation", BigInteger, nullable=False, server_default="0"),
    Column("seeded_at", UtcDateTime, nullable=False),
    Column("diffed_at", UtcDateTime),
    Column("enters", BigInteger, nullable=False, server_default="0"),
    Column("exits", BigInteger, nullable=False, server_default="0"),
)

backfill_checkpoints = Table(
    "backfill_checkpoints",
    metadata,
    Column("run_key", String(200), primary_key=True),
    Column("audience", String(200), primary_key=True),
    Column("last_customer_id", BigInteger, nullable=False),
    Column("members_read", BigInteger, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

notices_sent = Table(
    "notices_sent",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("kind", String(32), nullable=False),
    Column("customer_id", BigInteger, nullable=False),
    Column("period_key", String(64), nullable=False),
    Column("sent_at", UtcDateTime, nullable=False),
    Column("event_id", String(200)),
    UniqueConstraint("kind", "customer_id", "period_key"),
)

# Derived loyalty events (engine/derived): each customer's program state as last seen, which
# the next run diffs the tables against, and when the cooled-down events last went out.
derived_state = Table(
    "derived_state",
    metadata,
    Column("customer_id", BigInteger, primary_key=True, autoincrement=False),
    Column("tier", Text),
    Column("insights_segment", Text),
    Column("points_balance", BigInteger, nullable=False),
    Column("reward_available_at", UtcDateTime),
    Column("approaching_tier_at", UtcDateTime),
)

# One row (id 1) once the baseline is recorded: the run generation (part of every state
# event id, and the check that two runs never both commit from one snapshot) and the
# highest ledger entry already read.
derived_progress = Table(
    "derived_progress",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("generation", BigInteger, nullable=False),
    Column("ledger_entry_id", BigInteger, nullable=False),
    Column("baseline_at", UtcDateTime, nullable=False),
    Column("last_run_at", UtcDateTime, nullable=False),
)

# Completed referrals already turned into events (a referral completes by an update, so
# no position in the table says which ones are new).
derived_referrals_seen = Table(
    "derived_referrals_seen",
    metadata,
    Column("referral_id", BigInteger, primary_key=True, autoincrement=False),
    Column("seen_at", UtcDateTime, nullable=False),
)

# One row per (API key fingerprint, endpoint group) when the store is PostgreSQL: the next
# free send slot of a rate-limit bucket every worker of the key draws from (store/ratelimit.py).
rate_limit_buckets = Table(
    "rate_limit_buckets",
    metadata,
    Column("bucket", String(64), primary_key=True),
    Column("next_slot", Double, nullable=False),
)
