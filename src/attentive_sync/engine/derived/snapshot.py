"""The writing side of a derive run: one transaction takes the run generation, enqueues the
events and moves the snapshot, or, on a first run, records the baseline.

Taking the generation comes first: a second run that derived from the same snapshot finds
it taken and stores nothing (PostgreSQL's row lock makes it wait for the first one's
commit, SQLite's ``BEGIN IMMEDIATE`` serialises the two transactions outright).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, delete, text, update

from attentive_sync.engine.derived import queries
from attentive_sync.engine.derived.rules import Derived
from attentive_sync.engine.runtime import Runtime
from attentive_sync.store import _sql
from attentive_sync.store.queue import EnqueueResult
from attentive_sync.store.tables import derived_progress, derived_referrals_seen, derived_state
from attentive_sync.store.types import UtcDateTime

SNAPSHOT_COLUMNS = (
    "customer_id",
    "tier",
    "insights_segment",
    "points_balance",
    "reward_available_at",
    "approaching_tier_at",
)


class SnapshotMoved(Exception):
    """Another run committed from the same snapshot first; this one stored nothing."""


@dataclass
class Found:
    """What a run derived, before anything is written."""

    derived: Derived
    changed: int
    snapshot: list[dict[str, Any]]  # empty on a first run: the database writes it whole
    referral_ids: list[int]
    gone: list[int]


def claim_generation(
    conn: Connection, progress: queries.Progress | None, generation: int, upto: int, now: datetime
) -> None:
    """Take the next generation (and the ledger position), or raise SnapshotMoved."""
    if progress is None:
        stmt = _sql.upsert_insert(conn, derived_progress).values(
            id=1, generation=generation, ledger_entry_id=upto, baseline_at=now, last_run_at=now
        )
        inserted = stmt.on_conflict_do_nothing().returning(derived_progress.c.id)
        taken = conn.execute(inserted).first() is not None
    else:
        stmt = (
            update(derived_progress)
            .where(derived_progress.c.id == 1)
            .where(derived_progress.c.generation == progress.generation)
            .values(generation=generation, ledger_entry_id=upto, last_run_at=now)
        )
        taken = conn.execute(stmt).rowcount == 1
    if not taken:
        raise SnapshotMoved


def _rebaseline(conn: Connection, now: datetime) -> int:
    """Every customer's current state as the snapshot, every completed referral as seen."""
    conn.execute(delete(derived_state))
    conn.execute(delete(derived_referrals_seen))
    recorded = conn.execute(text(queries.record_baseline_sql())).rowcount
    seen = text(queries.SEE_ALL_REFERRALS_SQL).bindparams(bindparam("now", type_=UtcDateTime))
    conn.execute(seen, {"now": now})
    return int(recorded)


def record_baseline(runtime: Runtime, upto: int, now: datetime) -> int:
    """A first run: the baseline, and nothing sent. Returns the customers recorded."""
    with runtime.store.engine.begin() as conn:
        claim_generation(conn, None, 1, upto, now)
        return _rebaseline(conn, now)


def move(conn: Connection, rows: list[dict[str, Any]], gone: Sequence[int]) -> None:
    """The changed customers' new state; customers gone from the program leave it."""
    for chunk in _sql.chunks(rows):
        stmt = _sql.upsert_insert(conn, derived_state)
        keep = {name: stmt.excluded[name] for name in SNAPSHOT_COLUMNS[1:]}
        conn.execute(stmt.on_conflict_do_update(index_elements=["customer_id"], set_=keep), chunk)
    for condition in _sql.member_of(conn, derived_state.c.customer_id, gone):
        conn.execute(delete(derived_state).where(condition))


def _see_referrals(conn: Connection, ids: Sequence[int], now: datetime) -> None:
    for chunk in _sql.chunks([{"referral_id": i, "seen_at": now} for i in ids]):
        conn.execute(derived_referrals_seen.insert(), chunk)


def _record_cooldowns(conn: Connection, derived: Derived) -> None:
    """On a first run that sent the current state, when each cooled-down event went out."""
    for column, sent in (
        ("reward_available_at", derived.reward_available_at),
        ("approaching_tier_at", derived.approaching_tier_at),
    ):
        rows = [{"cid": cid, "at": at} for cid, at in sent.items()]
        stmt = (
            update(derived_state)
            .where(derived_state.c.customer_id == bindparam("cid"))
            .values({column: bindparam("at")})
        )
        for chunk in _sql.chunks(rows):
            conn.execute(stmt, chunk)


def commit(
    runtime: Runtime,
    progress: queries.Progress | None,
    upto: int,
    found: Found,
    owner: str,
    now: datetime,
) -> EnqueueResult:
    """One transaction: take the generation, enqueue the events (leased by ``owner``, who
    relays them), move the snapshot. ``progress`` None: a first run sending the current state."""
    with runtime.store.engine.begin() as conn:
        generation = (progress.generation if progress else 0) + 1
        claim_generation(conn, progress, generation, upto, now)
        if progress is None:
            _rebaseline(conn, now)
            _record_cooldowns(conn, found.derived)
        lease = (owner, runtime.sync.lease_seconds)
        queued = runtime.store.events.enqueue_in(conn, found.derived.events, now=now, lease=lease)
        if progress is not None:
            move(conn, found.snapshot, found.gone)
            _see_referrals(conn, found.referral_ids, now)
    return queued
