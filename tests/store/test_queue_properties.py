"""Property: under any sequence of leases, acks, nacks, quarantines and clock moves, a
lease returns exactly what the ordering rule allows, and the queue always drains."""

from __future__ import annotations

from datetime import datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select

from attentive_sync.store import NewDelta, QueuedDelta, Store
from attentive_sync.store.queue import set_inflight
from attentive_sync.store.tables import audience_deltas, quarantine
from tests.store.helpers import T0, at

LEASE_SECONDS = 60

steps = st.lists(
    st.one_of(
        st.tuples(st.just("lease"), st.integers(1, 6)),
        st.tuples(st.just("wait"), st.sampled_from([1, 30, 61, 400])),
        st.tuples(st.sampled_from(["ack", "nack", "inflight", "quarantine"]), st.integers(0, 9)),
    ),
    max_size=30,
)


def inflight(store: Store, seqs: list[int], job_id: str) -> None:
    """Mark leased rows as carried by ``job_id`` (what recording a job does to them)."""
    with store.engine.begin() as conn:
        set_inflight(conn, audience_deltas, seqs, job_id)


def expected_lease(rows: list[QueuedDelta], limit: int, now: datetime) -> list[int]:
    """The ordering rule, written plainly: skip customers with a held or waiting row."""
    held_back = {
        r.customer_id
        for r in rows
        if r.state == "inflight"
        or (r.state == "leased" and r.lease_expires_at > now)
        or (r.state == "pending" and r.next_attempt_at > now)
    }
    takeable = [
        r.seq
        for r in rows
        if r.customer_id not in held_back
        and (
            (r.state == "pending" and r.next_attempt_at <= now)
            or (r.state == "leased" and r.lease_expires_at <= now)
        )
    ]
    return takeable[:limit]


def _apply(store: Store, op: str, pick: int, held: list[int], now: datetime) -> None:
    seq = [held[pick % len(held)]]
    (row,) = store.deltas.get(seq)
    by = row.job_id if row.state == "inflight" else row.lease_owner or "w"
    if op == "ack":
        store.deltas.ack(seq, by=by)
    elif op == "nack":
        store.deltas.nack(seq, "try later", retry_at=at((now - T0).total_seconds() + 100), by=by)
    elif op == "inflight":
        inflight(store, seq, f"job-{seq[0]}")
    else:
        store.deltas.quarantine(seq, "bad", "never works", by=by, now=now)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(customers=st.lists(st.integers(1, 4), min_size=1, max_size=14), script=steps)
def test_leases_follow_the_ordering_rule_and_the_queue_drains(
    store: Store, customers: list[int], script: list[tuple[str, int]]
) -> None:
    with store.engine.begin() as conn:
        conn.execute(delete(quarantine))
        conn.execute(delete(audience_deltas))
    items = [NewDelta("vip", c, "enter", T0, f"k{i}") for i, c in enumerate(customers)]
    store.deltas.enqueue(items, now=T0)
    with store.engine.connect() as conn:
        every = sorted(conn.execute(select(audience_deltas.c.seq)).scalars())
    clock = 0.0

    for op, arg in script:
        now = at(clock)
        if op == "wait":
            clock += arg
        elif op == "lease":
            before = store.deltas.get(every)
            got = [row.seq for row in store.deltas.lease(arg, LEASE_SECONDS, "w", now=now)]
            assert got == expected_lease(before, arg, now)
        else:
            held = [r.seq for r in store.deltas.get(every) if r.state in ("leased", "inflight")]
            if held:
                _apply(store, op, arg, held, now)
        assert sum(store.deltas.counts().values()) == len(items)

    late = at(clock + 10**6)
    for r in store.deltas.get(every):
        if r.state == "inflight":
            store.deltas.ack([r.seq], by=r.job_id)
    while rows := store.deltas.lease(100, LEASE_SECONDS, "w", now=late):
        store.deltas.ack([row.seq for row in rows], by="w")
    counts = store.deltas.counts()
    assert counts["done"] + counts["quarantined"] == len(items)
