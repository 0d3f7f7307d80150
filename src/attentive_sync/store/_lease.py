"""The two SQL steps of a lease, kept apart from the queue's bookkeeping.

Per-customer order is the subtle rule: a customer's next change must not reach Attentive
while the job carrying their previous change is unfinished, even with several workers.
A lease therefore skips every customer who has a row held (leased and unexpired, or
inflight) or waiting for a retry. Each candidate's customer is probed through the partial
index of unfinished rows (a few rows each), so the plan stays a walk of the takeable rows
in queue order that stops at the limit, however large the backlog, however many rows the
run has in flight, and however stale the planner's statistics.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, Table, and_, not_, or_, select, union_all
from sqlalchemy.engine import Connection

from attentive_sync.store import _sql
from attentive_sync.store.tables import (
    HELD_STATES,
    JOB_QUEUES,
    TAKEABLE_STATES,
    UNFINISHED_STATES,
    bulk_job_items,
    bulk_jobs,
    customer_holds,
)


def held_back(t: Table, now: datetime, job_kinds: Sequence[str] | None) -> ColumnElement[bool]:
    """Whether a candidate row's customer is held back: they have a row held by a worker or
    job, or waiting for a later retry; with ``job_kinds`` (the kinds of job that carry this
    queue's rows), also when a job of any other kind that is not settled carries them or a
    hold names them (a write of another kind, a backfill page being sent, a submission
    whose fate is unknown, a job whose rows cannot hold their customers back:
    ``holds.JOB_HOLD``, a backfill job that keeps its members as one document:
    ``job_members``), on its own or in a range, or when a row of another queue is
    ``inflight`` in a job (which keeps its items as one document: ``job_documents``).

    The customer's own rows are probed per candidate (a few rows of the partial index on
    unfinished rows), so a lease costs the same however many rows the run has in flight;
    a job of this queue's own kinds is found through the rows it carries, never by reading
    its items.
    """
    mine = t.alias("mine")
    busy = (
        select(mine.c.seq)
        .where(
            mine.c.customer_id == t.c.customer_id,
            mine.c.state.in_(_sql.literal_in("unfinished", UNFINISHED_STATES)),
            or_(
                mine.c.state == "inflight",
                and_(mine.c.state == "leased", mine.c.lease_expires_at > now),
                and_(mine.c.state == "pending", mine.c.next_attempt_at > now),
            ),
        )
        .exists()
    )
    if job_kinds is None:
        return busy
    in_jobs = (
        select(bulk_job_items.c.customer_id)
        .join(bulk_jobs, bulk_jobs.c.job_id == bulk_job_items.c.job_id)
        .where(bulk_jobs.c.settled.is_(False))
    )
    if job_kinds:
        in_jobs = in_jobs.where(bulk_jobs.c.kind.not_in(_sql.literal_in("own_jobs", job_kinds)))
    # A job of another queue keeps its items as one document (``job_documents``): the rows
    # it carries are ``inflight`` in that queue, probed per candidate (held rows by customer).
    in_other_queues = [
        select(other.c.seq).where(other.c.customer_id == t.c.customer_id, *in_a_job(other)).exists()
        for other in JOB_QUEUES
        if other is not t
    ]
    h = customer_holds.c
    on_hold = select(h.customer_id).where(h.until > now)
    # A range hold (a backfill page being sent, an unsettled backfill job) names customers
    # beyond its first: probed per candidate through the partial index of the range rows.
    in_range = (
        select(h.customer_id)
        .where(
            h.through.is_not(None),
            h.through >= t.c.customer_id,
            h.customer_id <= t.c.customer_id,
            h.until > now,
        )
        .exists()
    )
    return or_(busy, t.c.customer_id.in_(union_all(in_jobs, on_hold)), in_range, *in_other_queues)


def in_a_job(t: Table) -> tuple[ColumnElement[bool], ...]:
    """``t``'s rows a job carries (``inflight``), matched through the partial index of held
    rows (leased or inflight: a few per customer)."""
    return (t.c.state.in_(_sql.literal_in("held", HELD_STATES)), t.c.state == "inflight")


def takeable_rows(
    t: Table,
    limit: int,
    now: datetime,
    only: Sequence[ColumnElement[bool]] = (),
    *,
    job_kinds: Sequence[str] | None = None,
) -> Select[Any]:
    """Rows a lease may take now, in queue order; on PostgreSQL locked, passing over rows
    another worker has locked. ``only`` narrows the lease (e.g. to some event topics);
    ``job_kinds``: see ``held_back``."""
    return (
        select(t)
        .where(
            *only,
            t.c.state.in_(_sql.literal_in("takeable", TAKEABLE_STATES)),
            or_(
                and_(t.c.state == "pending", t.c.next_attempt_at <= now),
                and_(t.c.state == "leased", t.c.lease_expires_at <= now),
            ),
            not_(held_back(t, now, job_kinds)),
        )
        .order_by(t.c.seq)
        .limit(limit)
        .with_for_update(skip_locked=True, of=t)
    )


def keep_customer_order(conn: Connection, table: Table, candidates: Sequence[Any]) -> list[Any]:
    """Drop candidates whose customer has an earlier unfinished row this lease did not take.

    The lease query already skips customers that are held back. What it cannot see is an
    earlier row that another worker is leasing at this very moment (SKIP LOCKED passed
    over it); this second look, a fresh statement after the locks were taken, catches
    that case on PostgreSQL. On SQLite it never drops anything: leases there are serialised.
    """
    if not candidates:
        return []
    taken = {row["seq"] for row in candidates}
    customers = sorted({row["customer_id"] for row in candidates})
    first_missing: dict[int, int] = {}
    for among in _sql.member_of(conn, table.c.customer_id, customers):
        stmt = select(table.c.customer_id, table.c.seq).where(
            among,
            table.c.state.in_(_sql.literal_in("unfinished", UNFINISHED_STATES)),
            table.c.seq < max(taken),
        )
        for customer_id, seq in conn.execute(stmt):
            if seq not in taken:
                first_missing[customer_id] = min(seq, first_missing.get(customer_id, seq))
    return [
        row
        for row in candidates
        if row["seq"] < first_missing.get(row["customer_id"], row["seq"] + 1)
    ]
