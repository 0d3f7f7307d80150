"""The two SQL steps of a lease, kept apart from the queue's bookkeeping.

Per-customer order is the subtle rule: a customer's next change must not reach Attentive
while the job carrying their previous change is unfinished, even with several workers.
A lease therefore skips every customer who has a row held (leased and unexpired, or
inflight) or waiting for a retry. That set is small and found through its own partial
indexes, so the plan stays a walk of the takeable rows in queue order that stops at the
limit, however large the backlog and however stale the planner's statistics.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, CompoundSelect, Select, Table, and_, or_, select, union_all
from sqlalchemy.engine import Connection

from attentive_sync.store import _sql
from attentive_sync.store.tables import (
    HELD_STATES,
    TAKEABLE_STATES,
    UNFINISHED_STATES,
    WAITING_STATES,
    bulk_job_items,
    bulk_jobs,
    customer_holds,
)


def held_back_customers(t: Table, now: datetime, across_jobs: bool) -> CompoundSelect:
    """Customers with a row held by a worker or job, or waiting for a later retry; with
    ``across_jobs``, also customers that any unfinished bulk job carries or a hold names
    (a write of another kind, a backfill batch, a submission whose fate is unknown)."""
    held = select(t.c.customer_id).where(
        t.c.state.in_(_sql.literal_in("held", HELD_STATES)),
        or_(t.c.state == "inflight", t.c.lease_expires_at > now),
    )
    waiting = select(t.c.customer_id).where(
        t.c.state.in_(_sql.literal_in("waiting", WAITING_STATES)),
        t.c.next_attempt_at > now,
    )
    if not across_jobs:
        return union_all(held, waiting)
    in_jobs = (
        select(bulk_job_items.c.customer_id)
        .join(bulk_jobs, bulk_jobs.c.job_id == bulk_job_items.c.job_id)
        .where(bulk_jobs.c.settled.is_(False))
    )
    on_hold = select(customer_holds.c.customer_id).where(customer_holds.c.until > now)
    return union_all(held, waiting, in_jobs, on_hold)


def takeable_rows(
    t: Table,
    limit: int,
    now: datetime,
    only: Sequence[ColumnElement[bool]] = (),
    *,
    across_jobs: bool = False,
) -> Select[Any]:
    """Rows a lease may take now, in queue order; on PostgreSQL locked, passing over rows
    another worker has locked. ``only`` narrows the lease (e.g. to some event topics)."""
    return (
        select(t)
        .where(
            *only,
            t.c.state.in_(_sql.literal_in("takeable", TAKEABLE_STATES)),
            or_(
                and_(t.c.state == "pending", t.c.next_attempt_at <= now),
                and_(t.c.state == "leased", t.c.lease_expires_at <= now),
            ),
            t.c.customer_id.not_in(held_back_customers(t, now, across_jobs)),
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
