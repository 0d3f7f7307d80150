"""Customer holds: customers whose next attribute write must wait until a moment passes.

A hold is taken when a bulk submission's fate is unknown (the answer was lost, or a 5xx
came back: the job may exist at Attentive and land later), so no newer write of that
customer is submitted until such a job can no longer be pending; by a job whose queue rows
cannot hold its customers back; by a backfill for the customers of a page's batches
between their checks and their sends; and by a backfill job, as the range of its members'
ids, until it settles (``job_members``). Leases of attribute writes skip held customers;
holds end by themselves at ``until``.

A backfill page holds its customers as one range (``hold_range``): its members are read in
customer order, so the range is tight, and one row replaces one per member. Customers in
the range who are not in the page wait for the page's sends too. The range ends when the
sends are over, failed ones included: a send that may have left a job holds its own
customers (an uncertain hold). Only a send cut short before that hold was taken leaves the
range to run out.
"""

from __future__ import annotations

import bisect
import functools
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, bindparam, delete, select
from sqlalchemy.engine import Connection

from attentive_sync.store import _sql
from attentive_sync.store.tables import customer_holds
from attentive_sync.store.types import as_of, aware

_COLUMNS = ("customer_id", "holder", "reason", "until")
_KEY = ("customer_id", "holder")


class CustomerHolds:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def hold(self, customer_ids: Iterable[int], holder: str, reason: str, until: datetime) -> None:
        """Hold these customers for ``holder`` until ``until`` (a later hold extends it)."""
        t = customer_holds
        with self._engine.begin() as conn:
            # Ended holds are dropped as new ones come, so the table stays small.
            conn.execute(delete(t).where(t.c.until <= as_of(None)))
            hold_in(conn, customer_ids, holder, reason, until)

    def hold_range(self, first: int, last: int, holder: str, reason: str, until: datetime) -> None:
        """Hold every customer id from ``first`` to ``last`` for ``holder`` until ``until``
        (one row, named by ``holder`` and ``first``; taking it again replaces it)."""
        if last < first:
            raise ValueError(f"a range hold runs upwards, not from {first} to {last}")
        with self._engine.begin() as conn:
            conn.execute(delete(customer_holds).where(customer_holds.c.until <= as_of(None)))
            hold_range_in(conn, first, last, holder, reason, until)

    def release_range(self, holder: str, first: int) -> None:
        """End the range hold ``holder`` took from ``first``."""
        with self._engine.begin() as conn:
            conn.execute(_RELEASE_RANGE, {"holder": holder, "first": first})

    def release(self, holder: str, customer_ids: Sequence[int] | None = None) -> None:
        """End ``holder``'s holds (on ``customer_ids`` only, when given)."""
        t = customer_holds
        with self._engine.begin() as conn:
            if customer_ids is None:
                conn.execute(delete(t).where(t.c.holder == holder))
                return
            release_in(conn, holder, customer_ids)

    def held(
        self, customer_ids: Sequence[int], *, now: datetime | None = None, but: str = ""
    ) -> set[int]:
        """Which of ``customer_ids`` a hold (other than ``but``'s) names at ``now``, on
        its own or in a range."""
        t, found, now = customer_holds, set[int](), as_of(now)
        if not customer_ids:
            return found
        with self._engine.connect() as conn:
            for among in _sql.ids_among(conn, t.c.customer_id, customer_ids):
                stmt = select(t.c.customer_id).where(among, t.c.until > now, t.c.holder != but)
                found.update(conn.execute(stmt).scalars())
            ranges = conn.execute(
                _RANGES_OVER,
                {"low": min(customer_ids), "high": max(customer_ids), "now": now, "but": but},
            ).all()
        if ranges:
            ordered = sorted(set(customer_ids))
            for first, last in ranges:
                start = bisect.bisect_left(ordered, first)
                found.update(ordered[start : bisect.bisect_right(ordered, last, lo=start)])
        return found.intersection(customer_ids)


def hold_in(
    conn: Connection, customer_ids: Iterable[int], holder: str, reason: str, until: datetime
) -> None:
    """``CustomerHolds.hold`` inside the caller's transaction."""
    until = aware(until, "until")
    rows = [(cid, holder, reason, until) for cid in sorted(set(customer_ids))]
    _sql.insert_rows(conn, customer_holds, rows, _COLUMNS, upsert=(_KEY, ("until", "reason")))


def hold_range_in(
    conn: Connection, first: int, last: int, holder: str, reason: str, until: datetime
) -> None:
    """``CustomerHolds.hold_range`` inside the caller's transaction."""
    row = (first, holder, reason, aware(until, "until"), last)
    _sql.insert_rows(
        conn,
        customer_holds,
        [row],
        (*_COLUMNS, "through"),
        upsert=(_KEY, ("until", "reason", "through")),
    )


# The longest holder name (``customer_holds.holder``); a longer one is cut.
HOLDER_LENGTH = 200


def job_holder(job_id: str) -> str:
    """Who holds customers for a recorded job whose queue rows cannot (see ``JOB_HOLD``)."""
    return f"job:{job_id}"[:HOLDER_LENGTH]


# A queue row in flight holds its customer back until its job settles. Where a row cannot
# (its run's lease ran out before the job was recorded, or a person parked it while the
# job ran), the job holds the customer instead, until it settles: at most as long as
# Attentive keeps a job.
JOB = "job"
JOB_HOLD = timedelta(days=14)


def release_in(conn: Connection, holder: str, customer_ids: Sequence[int]) -> None:
    """End ``holder``'s holds on ``customer_ids`` inside the caller's transaction."""
    if not customer_ids:
        return
    # Built once per dialect (a statement built per call costs more to build and key).
    dialect = conn.dialect.name
    params = {"holder": holder, "ids": _sql.member_values(dialect, customer_ids)}
    conn.execute(_release_statement(dialect), params)


@functools.cache
def _release_statement(dialect: str) -> Any:
    t = customer_holds
    among = _sql.member_param(dialect, t.c.customer_id, "ids")
    return delete(t).where(t.c.holder == bindparam("holder", type_=t.c.holder.type), among)


_RELEASE_RANGE = delete(customer_holds).where(
    customer_holds.c.holder == bindparam("holder", type_=customer_holds.c.holder.type),
    customer_holds.c.customer_id == bindparam("first", type_=customer_holds.c.customer_id.type),
    customer_holds.c.through.is_not(None),
)

# The unexpired range holds of other holders that reach into [low, high].
_RANGES_OVER = select(customer_holds.c.customer_id, customer_holds.c.through).where(
    customer_holds.c.through.is_not(None),
    customer_holds.c.through >= bindparam("low", type_=customer_holds.c.through.type),
    customer_holds.c.customer_id <= bindparam("high", type_=customer_holds.c.customer_id.type),
    customer_holds.c.until > bindparam("now", type_=customer_holds.c.until.type),
    customer_holds.c.holder != bindparam("but", type_=customer_holds.c.holder.type),
)
