"""The relay keeps sending while it plans and applies: chunks side by side, the next lease
planned early, what came back applied chunk by chunk. Order per recipient and "nothing lost"
must hold through all of it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select
from support.loyalty_samples import SAMPLES
from support.program import CONFIG, make_runtime

from attentive_sync.attentive import RetryableError
from attentive_sync.domain.errors import RecordRejected
from attentive_sync.domain.loyalty.catalogue import EventKey
from attentive_sync.engine.delivery.collaborators import direct_waiter, thread_pool_sender
from attentive_sync.engine.loyalty import relay
from attentive_sync.engine.loyalty.relay import (
    EventsConfig,
    recipient_chunks,
    run_relay,
    thread_deliverer,
)
from attentive_sync.engine.mapping import identifiers_for
from attentive_sync.engine.runtime import Runtime
from attentive_sync.sources.loyalty import load_customers
from attentive_sync.sources.schema import customers
from attentive_sync.store.records import NewEvent
from attentive_sync.store.tables import loyalty_events

PAYLOAD = SAMPLES[EventKey.TIER_UPGRADED]


@dataclass(frozen=True)
class _User:
    key: int

    def to_wire(self) -> dict[str, int]:
        return {"clientUserId": self.key}


@dataclass(frozen=True)
class _Event:
    user: _User


@given(
    recipients=st.lists(st.integers(0, 12), max_size=80),
    size=st.integers(1, 20),
)
def test_chunks_never_split_a_recipient_and_keep_every_send_once_in_order(recipients, size):
    sends = [(seq, _Event(_User(r))) for seq, r in enumerate(recipients)]
    chunks = recipient_chunks(sends, size)  # type: ignore[arg-type]
    assert sorted(seq for chunk in chunks for seq, _ in chunk) == list(range(len(sends)))
    where = {}
    for n, chunk in enumerate(chunks):
        assert chunk, "no empty chunk"
        # A chunk passes the size only when one recipient alone has more events than that.
        if len(chunk) > size:
            assert len({e.user.key for _, e in chunk}) == 1
        for _seq, event in chunk:
            assert where.setdefault(event.user.key, n) == n
    for chunk in chunks:
        seqs = [seq for seq, _ in chunk]
        by_user: dict[int, list[int]] = {}
        for seq, event in chunk:
            by_user.setdefault(event.user.key, []).append(seq)
        assert all(s == sorted(s) for s in by_user.values())
        assert len(seqs) == len(set(seqs))


@pytest.fixture
def small_rounds(monkeypatch) -> None:
    """Leases and chunks small enough that a few dozen events take several of each."""
    monkeypatch.setattr(relay, "CHUNK", 4)
    monkeypatch.setattr(relay, "FIRST_LEASE", 6)
    monkeypatch.setattr(relay, "MAX_LEASE", 10)


@pytest.fixture
def rt(program_url, emulator) -> Iterator[Runtime]:
    fast_retry = {"retry_backoff_seconds": 0.01, "retry_backoff_cap_seconds": 0.01}
    runtime = make_runtime(program_url, emulator.base_url, **fast_retry)
    yield runtime
    runtime.close()


def usable_customers(runtime: Runtime, n: int) -> list[int]:
    """Customers whose identifiers are all valid (the sample program has some that are not)."""
    c = customers.c
    stmt = select(c.customer_id).where(c.client_user_id.is_not(None), c.email.is_not(None))
    with runtime.source.connect() as conn:
        candidates = list(conn.scalars(stmt.order_by(c.customer_id)))
    usable = []
    for row in load_customers(runtime.source, candidates):
        try:
            identifiers_for(CONFIG, row)
        except RecordRejected:
            continue
        usable.append(row["customer_id"])
    assert len(usable) >= n, "the sample program has too few usable customers"
    return sorted(usable)[:n]


def enqueue(runtime: Runtime, cids: list[int], per_customer: int) -> list[str]:
    """``per_customer`` events for each customer, interleaved across customers."""
    now = datetime.now(timezone.utc) - timedelta(minutes=5)
    events, ids = [], []
    for k in range(per_customer):
        for cid in cids:
            event_id = f"e-{cid}-{k}"
            at = now + timedelta(seconds=k)
            events.append(NewEvent(event_id, "tier_upgraded", cid, at, PAYLOAD))
            ids.append(event_id)
    runtime.store.events.enqueue(events)
    return ids


def run(runtime: Runtime, deliver_many=None):
    collaborators = (
        deliver_many or thread_deliverer(runtime, 3),
        thread_pool_sender(runtime, "p", 1),
        direct_waiter(runtime, 2.0, "p"),
    )
    return run_relay(runtime, CONFIG, EventsConfig(update_profiles=False), "p", collaborators)


def states(runtime: Runtime) -> dict[str, str]:
    t = loyalty_events.c
    with runtime.store.engine.connect() as conn:
        return dict(conn.execute(select(t.event_id, t.state)).all())


def sent_ids(emulator) -> list[str]:
    return [e["externalEventId"] for e in emulator.state.events.select()]


def assert_each_once_in_order(emulator, ids: list[str], cids: list[int], per_customer: int):
    """Attentive holds every event exactly once, each customer's in the order queued."""
    arrived = sent_ids(emulator)
    assert sorted(arrived) == sorted(ids), "each event exactly once"
    for cid in cids:
        mine = [i for i in arrived if i.startswith(f"e-{cid}-")]
        assert mine == [f"e-{cid}-{k}" for k in range(per_customer)], "a customer's in order"


def test_many_leases_send_every_event_once_in_each_customers_order(rt, emulator, small_rounds):
    cids = usable_customers(rt, 5)
    ids = enqueue(rt, cids, per_customer=7)

    report = run(rt)

    assert report.problems() == []
    assert report.counts["leased"] == report.counts["accepted_events"] == len(ids) == 35
    assert set(states(rt).values()) == {"done"}
    assert_each_once_in_order(emulator, ids, cids, per_customer=7)


def test_a_run_failing_mid_way_applies_what_came_back_and_loses_nothing(rt, emulator, small_rounds):
    cids = usable_customers(rt, 6)
    ids = enqueue(rt, cids, per_customer=4)
    inner = thread_deliverer(rt, 3)
    calls = []

    def failing_third(chunks):
        calls.append(len(chunks))
        if len(calls) == 3:
            raise RuntimeError("the sending task crashed")
        return inner(chunks)

    with pytest.raises(RuntimeError, match="sending task crashed"):
        run(rt, failing_third)

    after_failure = states(rt)
    first = sent_ids(emulator)
    # What went out before the failure is done at the store and at Attentive, once.
    assert first and len(first) == len(set(first))
    assert {after_failure[i] for i in first} == {"done"}
    # Nothing else is left leased: it was handed back, or never leased.
    rest = {after_failure[i] for i in ids if i not in first}
    assert rest and rest <= {"pending"}

    time.sleep(0.05)  # the handed-back rows' retry backoff
    report = run(rt)

    assert report.problems() == []
    assert set(states(rt).values()) == {"done"}
    assert_each_once_in_order(emulator, ids, cids, per_customer=4)  # over both runs


def test_leases_planned_while_chunks_are_out_take_other_customers_only(
    rt, emulator, small_rounds, monkeypatch
):
    # More customers than one lease holds: the first chunk is held back until a second
    # lease has been planned, which finds customers of its own and leaves those still
    # going out alone.
    cids = usable_customers(rt, 16)
    ids = enqueue(rt, cids, per_customer=3)
    inner, real_plan = thread_deliverer(rt, 3), relay.plan_relay
    second_lease, overlapped = threading.Event(), []

    def plan(*args, **kwargs):
        planned = real_plan(*args, **kwargs)
        if planned.rows and kwargs["limit"] == relay.MAX_LEASE:
            second_lease.set()
        return planned

    def first_waits(chunks):
        if not overlapped:
            overlapped.append(second_lease.wait(timeout=10))
        return inner(chunks)

    monkeypatch.setattr(relay, "plan_relay", plan)
    report = run(rt, first_waits)

    # (The first chunks, going out side by side, may both have waited.)
    assert overlapped and all(overlapped), "a later lease was planned while they were out"
    assert report.problems() == []
    assert report.counts["leased"] == report.counts["accepted_events"] == len(ids)
    assert_each_once_in_order(emulator, ids, cids, per_customer=3)


def test_chunks_that_outlive_the_lease_are_not_leased_again_by_their_own_run(
    program_url, emulator, small_rounds
):
    fast_retry = {"retry_backoff_seconds": 0.01, "retry_backoff_cap_seconds": 0.01}
    rt = make_runtime(program_url, emulator.base_url, lease_seconds=0.5, **fast_retry)
    try:
        cids = usable_customers(rt, 20)
        ids = enqueue(rt, cids, per_customer=3)
        inner = thread_deliverer(rt, 3)

        def slow(chunks):
            time.sleep(0.3)  # with three chunks queued, longer than the lease
            return inner(chunks)

        report = run(rt, slow)

        assert report.problems() == []
        assert report.counts["leased"] == report.counts["accepted_events"] == len(ids) == 60
        assert set(states(rt).values()) == {"done"}
        assert_each_once_in_order(emulator, ids, cids, per_customer=3)
    finally:
        rt.close()


def test_chunks_side_by_side_keep_the_configured_requests_in_flight(rt, emulator, small_rounds):
    cids = usable_customers(rt, 16)
    ids = enqueue(rt, cids, per_customer=2)
    send = rt.client.send_custom_event
    guard, now_in_flight, most = threading.Lock(), [0], [0]

    def counted(body):
        with guard:
            now_in_flight[0] += 1
            most[0] = max(most[0], now_in_flight[0])
        try:
            time.sleep(0.01)
            return send(body)
        finally:
            with guard:
                now_in_flight[0] -= 1

    rt.client.send_custom_event = counted  # type: ignore[method-assign]
    collaborators = (
        thread_deliverer(rt, 4),
        thread_pool_sender(rt, "p", 1),
        direct_waiter(rt, 2.0, "p"),
    )
    cfg = EventsConfig(update_profiles=False, concurrency=4)
    report = run_relay(rt, CONFIG, cfg, "p", collaborators)

    assert report.counts["accepted_events"] == len(ids)
    assert 2 < most[0] <= 4, "both chunks sending, never more than four requests at once"
    assert relay.chunk_concurrency(1) == 1 and relay.side_by_side(1) == 1
    assert relay.chunk_concurrency(3) * relay.side_by_side(3) <= 3


def test_an_event_retried_within_the_run_goes_again_before_its_customers_next(
    rt, emulator, small_rounds
):
    cids = usable_customers(rt, 16)
    ids = enqueue(rt, cids, per_customer=3)
    flaky = f"e-{cids[0]}-1"
    send, failed = rt.client.send_custom_event, []

    def once_unavailable(body):
        if body["externalEventId"] == flaky and not failed:
            failed.append(flaky)
            raise RetryableError("Attentive server error (503)")
        return send(body)

    rt.client.send_custom_event = once_unavailable  # type: ignore[method-assign]

    report = run(rt)

    assert failed == [flaky]
    # The event and its customer's next one, which waits for it, go back to be retried.
    assert report.counts["retry_later"] == 2
    assert report.counts["accepted_events"] == len(ids), "the retried event too, in this run"
    assert set(states(rt).values()) == {"done"}
    assert_each_once_in_order(emulator, ids, cids, per_customer=3)
