"""The delivery lifecycle under Attentive's faults: every error path ends in a known state.

Each test drives the engine against the emulator with a fault switched on, then asserts
both what Attentive ended up holding and what the store says about every record.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from sqlalchemy import delete, select, update
from sqlalchemy.exc import OperationalError
from support.loyalty_samples import SAMPLES
from support.program import CONFIG, make_runtime

from attentive_sync.attentive import (
    AttentiveClient,
    AttentiveError,
    RecordResult,
    RetryableError,
    TransportError,
)
from attentive_sync.domain.loyalty.attributes import attribute_names
from attentive_sync.domain.loyalty.catalogue import EventKey
from attentive_sync.engine.audience.backfill import BackfillPlanner
from attentive_sync.engine.audience.export import run_backfill, run_incremental
from attentive_sync.engine.delivery.collaborators import direct_waiter, thread_pool_sender
from attentive_sync.engine.delivery.kinds import REBUILT, BackfillMember, rebuilt_enters
from attentive_sync.engine.delivery.settle import settle_job, settle_jobs
from attentive_sync.engine.delivery.submit import send_batches
from attentive_sync.engine.delivery.writes import run_writes
from attentive_sync.engine.loyalty.relay import EventsConfig, run_relay, thread_deliverer
from attentive_sync.engine.mapping import Mapper, identifiers_for
from attentive_sync.engine.report import Report
from attentive_sync.engine.runtime import Runtime
from attentive_sync.sources.loyalty import load_customers
from attentive_sync.sources.schema import audience_members, customers
from attentive_sync.store.jobs import JobItem
from attentive_sync.store.records import NewDelta, NewEvent, NewWrite
from attentive_sync.store.tables import audience_deltas, customer_holds

FAST_RETRY = {"retry_backoff_seconds": 0.01, "retry_backoff_cap_seconds": 0.01}


@pytest.fixture
def fast(program_url, emulator) -> Iterator[Runtime]:
    """A runtime whose records are retried at once, and whose uncertain holds are short."""
    rt = make_runtime(program_url, emulator.base_url, uncertain_hold_seconds=1.5, **FAST_RETRY)
    yield rt
    rt.close()


def sendable_customers(runtime: Runtime, n: int, audience: str | None = None) -> list[int]:
    """Customers with a client user id and email (so the emulator can be asked about them)."""
    stmt = select(customers.c.customer_id).where(
        customers.c.client_user_id.is_not(None), customers.c.email.is_not(None)
    )
    if audience:
        members = select(audience_members.c.customer_id).where(
            audience_members.c.audience_slug == audience
        )
        stmt = stmt.where(customers.c.customer_id.in_(members))
    with runtime.source.connect() as conn:
        return list(conn.scalars(stmt.order_by(customers.c.customer_id).limit(n)))


def at_emulator(emulator, runtime: Runtime, customer_id: int, name: str):
    (row,) = load_customers(runtime.source, [customer_id])
    client_user_id = identifiers_for(CONFIG, row).to_wire()["clientUserId"]
    user = emulator.state.find_user(clientUserId=client_user_id)
    return None if user is None else user["attributes"].get("custom", {}).get(name)


def incremental(runtime: Runtime, wait: float = 3.0):
    return run_incremental(
        runtime,
        CONFIG,
        "inc",
        thread_pool_sender(runtime, "inc", 2),
        direct_waiter(runtime, wait, "inc"),
    )


def until_drained(runtime: Runtime, rounds: int = 30, wait: float = 2.0) -> None:
    for _ in range(rounds):
        report = incremental(runtime, wait)
        assert report.problems() == []
        counts = runtime.store.deltas.counts()
        idle = counts["pending"] + counts["leased"] + counts["inflight"] == 0
        if idle and not runtime.store.jobs.list_unsettled():
            return
        time.sleep(0.2)
    raise AssertionError(f"not drained: {runtime.store.deltas.counts()}")


def delta_rows(runtime: Runtime) -> list[dict]:
    with runtime.store.engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(audience_deltas)).mappings()]


def test_a_failed_job_is_sent_again_on_a_later_run(fast, emulator):
    (cid,) = sendable_customers(fast, 1)
    emulator.state.change_faults({"fail_job_rate": 1.0})
    fast.store.deltas.enqueue([NewDelta("vip", cid, "enter", datetime.now(timezone.utc))])
    first = incremental(fast)
    assert first.counts["records_sent"] == 1 and first.counts["retried"] == 1
    (row,) = delta_rows(fast)
    assert (row["state"], row["attempts"]) == ("pending", 1)
    assert "FAILED" in row["last_error"]
    emulator.state.change_faults({"fail_job_rate": 0.0})
    until_drained(fast)
    (row,) = delta_rows(fast)
    assert row["state"] == "done"
    assert at_emulator(emulator, fast, cid, "vip") is True
    assert fast.store.accepted.for_customers([cid]).get(cid, {})["vip"] is True


def test_retryable_record_results_and_unreadable_results_are_sent_again(fast, emulator):
    cids = sendable_customers(fast, 2)
    now = datetime.now(timezone.utc)
    fast.store.deltas.enqueue([NewDelta("vip", c, "enter", now) for c in cids])
    calls = rewrite_results(fast, lambda n, results: raise_unreadable() if n == 1 else results)
    until_drained(fast)
    assert calls["n"] >= 2
    assert {row["state"] for row in delta_rows(fast)} == {"done"}
    assert max(row["attempts"] for row in delta_rows(fast)) == 1
    for cid in cids:
        assert at_emulator(emulator, fast, cid, "vip") is True


def raise_unreadable() -> Iterator[RecordResult]:
    raise AttentiveError("results file line 1 is malformed")


Rewrite = Callable[[int, Iterator[RecordResult]], Iterator[RecordResult]]


def rewrite_results(runtime: Runtime, rewrite: Rewrite) -> dict[str, int]:
    """Hand every results file the client reads through ``rewrite(call, results)`` (``call``
    counts from 1); returns the call counter."""
    real = runtime.client.iter_bulk_results
    calls = {"n": 0}

    def rewritten(url: str) -> Iterator[RecordResult]:
        calls["n"] += 1
        return rewrite(calls["n"], real(url))

    runtime.client.iter_bulk_results = rewritten  # type: ignore[method-assign]
    return calls


def test_retries_exhausted_park_the_record_and_the_customer_moves_on(program_url, emulator):
    runtime = make_runtime(program_url, emulator.base_url, max_attempts=2, **FAST_RETRY)
    try:
        (cid,) = sendable_customers(runtime, 1)
        now = datetime.now(timezone.utc)
        emulator.state.change_faults({"fail_job_rate": 1.0})
        runtime.store.deltas.enqueue([NewDelta("vip", cid, "enter", now)])
        incremental(runtime)
        time.sleep(0.05)
        second = incremental(runtime)
        assert second.counts["parked"] == 1
        (entry,) = runtime.store.quarantine.list(reason="retries_exhausted")
        assert entry.customer_id == cid and "2 attempts" in entry.detail
        assert "FAILED" in entry.detail
        emulator.state.change_faults({"fail_job_rate": 0.0})
        runtime.store.deltas.enqueue(
            [NewDelta("newsletter", cid, "enter", now + timedelta(seconds=1))]
        )
        until_drained(runtime)
        assert at_emulator(emulator, runtime, cid, "newsletter") is True
        states = sorted(row["state"] for row in delta_rows(runtime))
        assert states == ["done", "quarantined"]
    finally:
        runtime.close()


class LoseFirstBulkAnswer(httpx.BaseTransport):
    """Hands the first bulk submit to Attentive, then loses its answer: the job exists
    at Attentive, but the client sees a broken connection."""

    def __init__(self, after_loss: Callable[[], None]) -> None:
        self._inner = httpx.HTTPTransport()
        self._after_loss = after_loss
        self.lost = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self._inner.handle_request(request)
        is_submit = request.method == "POST" and request.url.path.endswith("/attributes")
        if is_submit and not self.lost:
            response.read()
            response.close()
            self.lost += 1
            self._after_loss()
            raise httpx.ReadError("connection lost after the request went out")
        return response

    def close(self) -> None:
        self._inner.close()


def test_a_lost_answer_to_an_accepted_submission_still_converges(program_url, emulator):
    """The lost job (slow) still lands after the exit unless the customer is held."""
    runtime = make_runtime(program_url, emulator.base_url, uncertain_hold_seconds=2.0)
    slow = {"slow_job_rate": 1.0, "slow_job_delay": 1.5}
    transport = LoseFirstBulkAnswer(lambda: emulator.state.change_faults({"slow_job_rate": 0}))
    runtime.client.close()
    runtime.client = AttentiveClient(runtime.client.settings, transport=transport)
    try:
        (cid,) = sendable_customers(runtime, 1)
        now = datetime.now(timezone.utc)
        emulator.state.change_faults(slow)
        runtime.store.deltas.enqueue([NewDelta("vip", cid, "enter", now)])
        first = incremental(runtime, wait=0.5)
        assert transport.lost == 1 and first.counts["uncertain_submissions"] == 1
        assert first.counts["accepted"] == 1  # the re-sent request, recorded and settled
        runtime.store.deltas.enqueue([NewDelta("vip", cid, "exit", now + timedelta(seconds=1))])
        held = incremental(runtime, wait=0.1)
        assert held.counts["leased"] == 0, "the exit waits while the lost job may land"
        assert runtime.store.holds.held([cid]) == {cid}
        time.sleep(2.0)
        until_drained(runtime)
        time.sleep(0.2)
        assert at_emulator(emulator, runtime, cid, "vip") is False
        jobs_at_attentive = emulator.state.stats()["by_endpoint"]["bulk_user_attributes"]["202"]
        assert jobs_at_attentive == 3  # the lost one, its re-send, the exit
        assert {row["state"] for row in delta_rows(runtime)} == {"done"}
    finally:
        runtime.close()


def test_backfill_and_exits_with_half_slow_jobs_every_exited_customer_ends_false(
    any_runtime, emulator
):
    runtime = any_runtime
    emulator.state.change_faults({"slow_job_rate": 0.5, "slow_job_delay": 0.6})
    owner = "backfill-run"
    report = run_backfill(
        runtime,
        CONFIG.model_copy(update={"audiences": ["vip"]}),
        "bf",
        thread_pool_sender(runtime, owner, 4),
        direct_waiter(runtime, 0.05, owner),
    )
    assert report.problems() == []
    leaving = sendable_customers(runtime, 20, audience="vip")
    assert len(leaving) >= 5
    now = datetime.now(timezone.utc)
    with runtime.source.begin() as conn:
        conn.execute(
            delete(audience_members).where(
                audience_members.c.audience_slug == "vip",
                audience_members.c.customer_id.in_(leaving),
            )
        )
    runtime.store.deltas.enqueue([NewDelta("vip", c, "exit", now) for c in leaving])
    until_drained(runtime)
    time.sleep(0.7)  # any slow job still running has landed
    assert [at_emulator(emulator, runtime, c, "vip") for c in leaving] == [False] * len(leaving)
    for cid in leaving:
        assert runtime.store.accepted.for_customers([cid]).get(cid, {})["vip"] is False


def test_a_job_is_settled_by_one_run(runtime, emulator):
    (cid,) = sendable_customers(runtime, 1)
    runtime.store.deltas.enqueue([NewDelta("vip", cid, "enter", datetime.now(timezone.utc))])
    (row,) = runtime.store.deltas.lease(10, 60, "a")
    (customer,) = load_customers(runtime.source, [cid])
    user = Mapper(CONFIG).map(customer, {"vip": True})
    job_id = runtime.client.submit_bulk_users([user.to_wire()])
    runtime.store.jobs.record_job(
        job_id, "audience_incremental", [JobItem(cid, "delta", str(row.seq), {"vip": True})]
    )
    assert runtime.store.jobs.claim_for_settling([job_id], "run-a", 60) == [job_id]
    time.sleep(0.2)
    job = runtime.client.get_bulk_job(job_id)
    assert settle_jobs(runtime, [job], "run-b") == []  # run-a holds it
    assert runtime.store.deltas.get([row.seq])[0].state == "inflight"
    (settled,) = settle_jobs(runtime, [job], "run-a")
    assert settled.accepted == 1
    assert runtime.store.deltas.get([row.seq])[0].state == "done"
    assert settle_jobs(runtime, [job], "run-b") == []  # settled: nobody settles it again
    # A run whose claim ran out while it settled finishes second: nothing is applied twice.
    runtime.store.accepted.forget([(cid, "vip")])
    late = settle_job(runtime, job)
    assert (late.accepted, late.rejected, late.retried) == (0, 0, 0)
    assert runtime.store.accepted.for_customers([cid]) == {}


def test_a_retried_send_skips_rows_a_recorded_job_carries(runtime, emulator):
    cids = sendable_customers(runtime, 3)
    now = datetime.now(timezone.utc)
    runtime.store.deltas.enqueue([NewDelta("vip", c, "enter", now) for c in cids])
    send = thread_pool_sender(runtime, "o", 1)
    from attentive_sync.engine.audience.incremental import plan_incremental

    plan = plan_incremental(runtime, CONFIG, "o")
    first = send(plan.batches, "audience_incremental")
    again = send(plan.batches, "audience_incremental")
    assert first[0].records_sent == 3 and again[0].records_sent == 0
    assert again[0].held_back == 3 and again[0].requests == 0
    assert emulator.state.stats()["by_endpoint"]["bulk_user_attributes"]["202"] == 1


def test_a_tier_change_after_the_first_profile_write_reaches_attentive(runtime, emulator):
    (cid,) = sendable_customers(runtime, 1)
    names = attribute_names("Loyalty")

    def relay_event(n: int) -> None:
        payload = SAMPLES[EventKey.TIER_UPGRADED]
        event = NewEvent(f"e{n}", "tier_upgraded", cid, datetime.now(timezone.utc), payload)
        runtime.store.events.enqueue([event])
        report = run_relay(
            runtime,
            CONFIG,
            EventsConfig(),
            "relay",
            (
                thread_deliverer(runtime, 2),
                thread_pool_sender(runtime, "relay", 1),
                direct_waiter(runtime, 5.0, "relay"),
            ),
        )
        assert report.problems() == []

    for n, tier in enumerate(("Bronze", "Gold")):
        with runtime.source.begin() as conn:
            conn.execute(update(customers).where(customers.c.customer_id == cid).values(tier=tier))
        relay_event(n)
        assert at_emulator(emulator, runtime, cid, names["tier"]) == tier
    relay_event(2)  # unchanged: done without another request
    assert runtime.store.writes.counts()["done"] == 3
    assert emulator.state.stats()["by_endpoint"]["bulk_user_attributes"]["202"] == 2


def test_an_event_attentive_keeps_refusing_is_parked_and_later_ones_go(program_url, emulator):
    runtime = make_runtime(program_url, emulator.base_url, max_attempts=2, **FAST_RETRY)
    try:
        (cid,) = sendable_customers(runtime, 1)
        now = datetime.now(timezone.utc)
        payload = SAMPLES[EventKey.TIER_UPGRADED]
        events = EventsConfig(update_profiles=False)
        collaborators = (
            thread_deliverer(runtime, 2),
            thread_pool_sender(runtime, "r", 1),
            direct_waiter(runtime, 1.0, "r"),
        )
        runtime.store.events.enqueue([NewEvent("bad", "tier_upgraded", cid, now, payload)])
        emulator.state.change_faults({"error_rate": 1.0})
        first = run_relay(runtime, CONFIG, events, "r", collaborators)
        time.sleep(0.05)
        second = run_relay(runtime, CONFIG, events, "r", collaborators)
        # Tried twice (once more inside the first run if its backoff passed), then parked.
        assert first.counts["retry_later"] == 1
        assert first.counts["retries_exhausted"] + second.counts["retries_exhausted"] == 1
        assert first.problems() == [] and second.problems() == []
        (entry,) = runtime.store.quarantine.list(reason="retries_exhausted")
        assert entry.source_kind == "event" and "server error" in entry.detail
        emulator.state.change_faults({"error_rate": 0.0})
        later = NewEvent("good", "tier_upgraded", cid, now + timedelta(seconds=1), payload)
        runtime.store.events.enqueue([later])
        third = run_relay(runtime, CONFIG, events, "r", collaborators)
        assert third.counts["accepted_events"] == 1
        ids = [e.get("externalEventId") for e in emulator.state.events.select()]
        assert ids == ["good"]
    finally:
        runtime.close()


def test_a_failed_run_hands_its_leased_rows_back_with_the_error(program_url, emulator):
    runtime = make_runtime(program_url, emulator.base_url, uncertain_hold_seconds=0.5, **FAST_RETRY)
    runtime.client.close()
    settings = runtime.client.settings.model_copy(update={"max_attempts": 1})
    runtime.client = AttentiveClient(settings)
    try:
        cids = sendable_customers(runtime, 2)
        now = datetime.now(timezone.utc)
        runtime.store.deltas.enqueue([NewDelta("vip", c, "enter", now) for c in cids])
        emulator.state.change_faults({"error_rate": 1.0})
        with pytest.raises(RetryableError):
            incremental(runtime)
        rows = delta_rows(runtime)
        assert {(r["state"], r["attempts"], r["lease_owner"]) for r in rows} == {
            ("pending", 1, None)
        }
        assert all("the run failed: ServerError" in r["last_error"] for r in rows)
        # A 5xx may have been carried out: the customers wait out their hold first.
        assert runtime.store.holds.held(cids) == set(cids)
        emulator.state.change_faults({"error_rate": 0.0})
        time.sleep(0.6)
        until_drained(runtime)
        assert [at_emulator(emulator, runtime, c, "vip") for c in cids] == [True, True]
    finally:
        runtime.close()


def test_a_results_file_longer_than_its_job_settles_on_the_job_only(runtime, emulator):
    """Only the job's own records are kept from the stream; extra lines cost nothing."""
    cids = sendable_customers(runtime, 3)
    now = datetime.now(timezone.utc)
    runtime.store.deltas.enqueue([NewDelta("vip", c, "enter", now) for c in cids])
    extra = {"lines": 0}

    def padded(_: int, results: Iterator[RecordResult]) -> Iterator[RecordResult]:
        yield from results
        for index in range(3, 20_003):
            extra["lines"] += 1
            yield RecordResult(index, 200, "", {"clientUserId": "someone-else"})

    rewrite_results(runtime, padded)
    report = incremental(runtime)
    assert extra["lines"] == 20_000
    assert report.counts["accepted"] == 3 and report.problems() == []
    assert {row["state"] for row in delta_rows(runtime)} == {"done"}


def test_a_rebuilt_enter_queued_after_an_exit_sends_what_the_source_says(runtime, emulator):
    """A backfill member re-queued as an enter just before they left (its membership read
    first, the producer's exit queued in between) must not undo the exit."""
    (cid,) = sendable_customers(runtime, 1, audience="vip")
    now = datetime.now(timezone.utc)
    with runtime.source.begin() as conn:
        conn.execute(
            delete(audience_members).where(
                audience_members.c.audience_slug == "vip", audience_members.c.customer_id == cid
            )
        )
    runtime.store.deltas.enqueue([NewDelta("vip", cid, "exit", now)])
    late = NewDelta("vip", cid, "enter", now, f"{REBUILT}late-backfill-retry")
    runtime.store.deltas.enqueue([late])
    until_drained(runtime)
    assert at_emulator(emulator, runtime, cid, "vip") is False
    assert runtime.store.accepted.for_customers([cid]).get(cid, {})["vip"] is False


def test_a_backfill_leaves_a_member_with_a_queued_change_to_the_queue(runtime, emulator):
    """The member who just joined has their enter queued: the queue sends it, not the
    backfill (whose read may be older than the change)."""
    members = sendable_customers(runtime, 3, audience="vip")
    now = datetime.now(timezone.utc)
    runtime.store.deltas.enqueue([NewDelta("vip", members[0], "enter", now)])
    report = run_backfill(
        runtime,
        CONFIG.model_copy(update={"audiences": ["vip"]}),
        "bf",
        thread_pool_sender(runtime, "bf", 2),
        direct_waiter(runtime, 5.0, "bf"),
    )
    assert report.problems() == [] and report.counts["held_back"] == 1
    assert at_emulator(emulator, runtime, members[0], "vip") is None
    assert [at_emulator(emulator, runtime, c, "vip") for c in members[1:]] == [True, True]
    until_drained(runtime)
    assert at_emulator(emulator, runtime, members[0], "vip") is True


def test_a_job_whose_settler_died_is_settled_by_the_next_run(runtime, emulator):
    (cid,) = sendable_customers(runtime, 1)
    runtime.store.deltas.enqueue([NewDelta("vip", cid, "enter", datetime.now(timezone.utc))])
    (row,) = runtime.store.deltas.lease(10, 60, "a")
    (customer,) = load_customers(runtime.source, [cid])
    job_id = runtime.client.submit_bulk_users(
        [Mapper(CONFIG).map(customer, {"vip": True}).to_wire()]
    )
    runtime.store.jobs.record_job(
        job_id, "audience_incremental", [JobItem(cid, "delta", str(row.seq), {"vip": True})]
    )
    assert runtime.store.jobs.claim_for_settling([job_id], "killed-run", 0.2) == [job_id]
    time.sleep(0.3)  # the dead run's claim runs out
    report = incremental(runtime)
    assert report.counts["jobs_settled"] == 1 and report.counts["accepted"] == 1
    assert runtime.store.deltas.get([row.seq])[0].state == "done"
    assert at_emulator(emulator, runtime, cid, "vip") is True


def test_a_record_answered_503_in_the_results_is_sent_again(fast, emulator):
    cids = sendable_customers(fast, 2)
    now = datetime.now(timezone.utc)
    fast.store.deltas.enqueue([NewDelta("vip", c, "enter", now) for c in cids])

    def first_record_busy(call: int, results: Iterator[RecordResult]) -> Iterator[RecordResult]:
        for result in results:
            if call == 1 and result.index == 0:
                yield RecordResult(0, 503, "temporarily unavailable", result.request)
            else:
                yield result

    rewrite_results(fast, first_record_busy)
    first = incremental(fast)
    assert first.counts["accepted"] == 1 and first.counts["retried"] == 1
    until_drained(fast)
    rows = sorted(delta_rows(fast), key=lambda r: r["seq"])
    assert [(r["state"], r["attempts"]) for r in rows] == [("done", 1), ("done", 0)]
    assert "temporarily unavailable" in rows[0]["last_error"]
    assert [at_emulator(emulator, fast, c, "vip") for c in cids] == [True, True]


def test_a_job_attentive_no_longer_knows_is_sent_again(fast, emulator):
    (cid,) = sendable_customers(fast, 1)
    fast.store.deltas.enqueue([NewDelta("vip", cid, "enter", datetime.now(timezone.utc))])
    (row,) = fast.store.deltas.lease(10, 60, "gone")
    fast.store.jobs.record_job(
        "job-attentive-forgot",
        "audience_incremental",
        [JobItem(cid, "delta", str(row.seq), {"vip": True})],
    )
    until_drained(fast)
    assert fast.store.jobs.get("job-attentive-forgot").status == "LOST"
    (after,) = delta_rows(fast)
    assert (after["state"], after["attempts"]) == ("done", 1)
    assert "no longer knows" in after["last_error"]
    assert at_emulator(emulator, fast, cid, "vip") is True


def test_a_record_attentive_refuses_is_quarantined_and_the_rest_applied(runtime, emulator):
    cids = sendable_customers(runtime, 3)
    now = datetime.now(timezone.utc)
    runtime.store.deltas.enqueue([NewDelta("vip", c, "enter", now) for c in cids])

    def second_refused(_: int, results: Iterator[RecordResult]) -> Iterator[RecordResult]:
        for result in results:
            if result.index == 1:
                yield RecordResult(1, 400, "email is not valid", result.request)
            else:
                yield result

    rewrite_results(runtime, second_refused)
    report = incremental(runtime)
    assert report.counts["accepted"] == 2 and report.counts["rejected"] == 1
    (entry,) = runtime.store.quarantine.list(reason="rejected_by_attentive")
    assert entry.customer_id == cids[1] and entry.detail == "email is not valid"
    assert "@" not in json.dumps(entry.payload_masked).replace("***@", "")
    states = [r["state"] for r in sorted(delta_rows(runtime), key=lambda r: r["seq"])]
    assert states == ["done", "quarantined", "done"]
    assert [at_emulator(emulator, runtime, c, "vip") for c in (cids[0], cids[2])] == [True, True]


def run_profile_writes(runtime: Runtime, wait: float = 3.0):
    report = Report("writes")
    collaborators = (thread_pool_sender(runtime, "w", 1), direct_waiter(runtime, wait, "w"))
    run_writes(runtime, CONFIG, "w", ["profile"], "loyalty_profile", collaborators, report)
    assert report.problems() == []
    return report


def test_a_write_whose_outcome_is_unknown_is_not_taken_as_held(fast, emulator):
    """Silver may have reached Attentive (its results were unreadable), so a later Gold
    must be sent even though the ledger last saw Gold accepted."""
    (cid,) = sendable_customers(fast, 1)
    now = datetime.now(timezone.utc)
    fast.store.writes.enqueue([NewWrite("w1", "profile", cid, {"tier": "Gold"}, now)])
    run_profile_writes(fast)
    rewrite_results(fast, lambda n, results: raise_unreadable() if n == 1 else results)
    fast.store.writes.enqueue([NewWrite("w2", "profile", cid, {"tier": "Silver"}, now)])
    run_profile_writes(fast)
    assert at_emulator(emulator, fast, cid, "tier") == "Silver"  # applied, outcome unknown
    assert "tier" not in fast.store.accepted.for_customers([cid]).get(cid, {})
    fast.store.writes.enqueue([NewWrite("w3", "profile", cid, {"tier": "Gold"}, now)])
    time.sleep(0.05)
    report = run_profile_writes(fast)
    assert report.counts["writes_unchanged"] == 0 and report.counts["accepted"] == 1
    assert at_emulator(emulator, fast, cid, "tier") == "Gold"


def test_two_writes_of_one_customer_never_share_a_lease_in_flight(runtime, emulator):
    (cid,) = sendable_customers(runtime, 1)
    now = datetime.now(timezone.utc)
    runtime.store.writes.enqueue(
        [
            NewWrite("p1", "profile", cid, {"tier": "Gold", "segment": "Loyal"}, now),
            NewWrite("p2", "profile", cid, {"tier": "Silver"}, now),
        ]
    )
    emulator.state.change_faults({"slow_job_rate": 1.0, "slow_job_delay": 0.5})
    first = run_profile_writes(runtime)
    assert first.counts["writes_deferred"] == 1 and first.counts["records_sent"] == 1
    emulator.state.change_faults({"slow_job_rate": 0.0})
    second = run_profile_writes(runtime)
    assert second.counts["records_sent"] == 1
    assert at_emulator(emulator, runtime, cid, "tier") == "Silver"
    assert at_emulator(emulator, runtime, cid, "segment") == "Loyal"


def test_an_accepted_batch_whose_job_could_not_be_recorded_holds_its_customers(
    program_url, emulator
):
    runtime = make_runtime(program_url, emulator.base_url, uncertain_hold_seconds=2.0)
    try:
        (cid,) = sendable_customers(runtime, 1, audience="vip")
        emulator.state.change_faults({"slow_job_rate": 1.0, "slow_job_delay": 1.5})
        real_record = runtime.store.jobs.record_job

        def locked(*args, **kwargs):
            emulator.state.change_faults({"slow_job_rate": 0.0})
            raise OperationalError("INSERT", {}, Exception("database is locked"))

        runtime.store.jobs.record_job = locked  # type: ignore[method-assign]
        config = CONFIG.model_copy(update={"audiences": ["vip"]})
        with pytest.raises(OperationalError):
            run_backfill(
                runtime,
                config,
                "bf",
                thread_pool_sender(runtime, "bf", 1),
                direct_waiter(runtime, 0.1, "bf"),
            )
        runtime.store.jobs.record_job = real_record  # type: ignore[method-assign]
        assert cid in runtime.store.holds.held([cid])
        with runtime.source.begin() as conn:
            conn.execute(
                delete(audience_members).where(
                    audience_members.c.audience_slug == "vip",
                    audience_members.c.customer_id == cid,
                )
            )
        runtime.store.deltas.enqueue([NewDelta("vip", cid, "exit", datetime.now(timezone.utc))])
        assert incremental(runtime, wait=0.1).counts["leased"] == 0  # held
        time.sleep(2.1)
        until_drained(runtime)
        time.sleep(0.2)
        assert at_emulator(emulator, runtime, cid, "vip") is False
    finally:
        runtime.close()


def test_a_replayed_write_that_a_newer_one_overtook_stays_closed(runtime, emulator):
    (cid,) = sendable_customers(runtime, 1)
    now = datetime.now(timezone.utc)
    runtime.store.writes.enqueue([NewWrite("old", "profile", cid, {"tier": "Silver"}, now)])
    (row,) = runtime.store.writes.lease(10, 60, "x")
    runtime.store.writes.quarantine([row.seq], "retries_exhausted", "8 attempts", by="x")
    runtime.store.writes.enqueue([NewWrite("new", "profile", cid, {"tier": "Gold"}, now)])
    run_profile_writes(runtime)
    outcome = runtime.store.quarantine.replay()
    assert (len(outcome.requeued), len(outcome.superseded)) == (0, 1)
    run_profile_writes(runtime)
    assert at_emulator(emulator, runtime, cid, "tier") == "Gold"


def _backfill_batches(runtime: Runtime, members: int, batch_size: int):
    config = CONFIG.model_copy(update={"audiences": ["vip"], "batch_size": batch_size})
    planner = BackfillPlanner(runtime, config, "bf", page_size=members)
    return next(planner.pages()).batches


def _holds_of(runtime: Runtime, holder: str) -> list[int]:
    with runtime.store.engine.connect() as conn:
        stmt = select(customer_holds.c.customer_id).where(customer_holds.c.holder == holder)
        return sorted(conn.scalars(stmt))


def test_a_group_of_batches_is_checked_once_and_each_member_goes_its_own_way(
    any_runtime, emulator, monkeypatch
):
    """One page's batches are checked together (one range hold, one read of each kind of state);
    what each member's state says still decides: queued change -> left to the queue, busy
    customer -> a rebuilt delta, the rest sent; no hold of the run is left behind."""
    runtime = any_runtime
    batches = _backfill_batches(runtime, 6, batch_size=2)
    members = [item.customer_id for batch in batches for item in batch.items]
    assert len(batches) >= 3  # (one member of the page may be quarantined on mapping)
    queued, busy = batches[1].items[0].customer_id, batches[-1].items[0].customer_id
    now = datetime.now(timezone.utc)
    runtime.store.deltas.enqueue([NewDelta("vip", queued, "enter", now)])
    runtime.store.holds.hold([busy], "uncertain:x", "uncertain", now + timedelta(minutes=5))
    ranges: list[tuple[int, int]] = []
    real_hold = runtime.store.holds.hold_range

    def counted(first, last, *args, **kwargs):
        ranges.append((first, last))
        return real_hold(first, last, *args, **kwargs)

    monkeypatch.setattr(runtime.store.holds, "hold_range", counted)

    results = send_batches(runtime, batches, "audience_backfill", "bf", workers=2)

    assert ranges == [(min(members), max(members))]
    assert sum(r.records_sent for r in results) == len(members) - 2
    assert sum(r.held_back for r in results) == 2
    sent = [c for c in members if c not in (queued, busy)]
    assert runtime.store.jobs.customers_in_flight(members) == set(sent)
    submitted = [r.requests for r in results]
    assert emulator.state.stats()["by_endpoint"]["bulk_user_attributes"]["202"] == sum(submitted)
    assert _holds_of(runtime, "backfill:bf") == []
    waiting = {
        (row["customer_id"], row["delta_key"].startswith(REBUILT)) for row in delta_rows(runtime)
    }
    assert waiting == {(queued, False), (busy, True)}


def test_a_group_check_that_fails_hands_its_holds_back(any_runtime, emulator, monkeypatch):
    runtime = any_runtime
    batches = _backfill_batches(runtime, 4, batch_size=2)

    def broken(*args, **kwargs):
        raise OperationalError("SELECT", {}, Exception("disk I/O error"))

    monkeypatch.setattr("attentive_sync.engine.delivery.kinds.members_among", broken)
    with pytest.raises(OperationalError):
        send_batches(runtime, batches, "audience_backfill", "bf", workers=2)

    assert _holds_of(runtime, "backfill:bf") == []
    assert emulator.state.stats()["by_endpoint"].get("bulk_user_attributes") is None


def test_a_record_ref_holds_every_audience_or_is_split_to_fit():
    member = BackfillMember()
    assert member.refs("bf", 7, ("gold", "vip")) == [("bf|gold,vip|7", ("gold", "vip"))]
    assert member.audiences("bf|gold,vip|7") == ("gold", "vip")
    assert member.audiences("bf|vip|7") == ("vip",)
    many = tuple(f"audience_{n:03d}_{'x' * 30}" for n in range(12))
    refs = member.refs("run|key", 123456, many)
    assert len(refs) > 1 and all(len(ref) <= 200 for ref, _ in refs)
    assert [a for _, group in refs for a in group] == list(many)
    assert all(member.audiences(ref) == group for ref, group in refs)


def test_a_record_whose_customer_left_one_audience_sends_the_others_as_enters(
    any_runtime, emulator
):
    """Read as in vip and churn_risk, then gone from churn_risk before the send: the record
    (which says true for both) is not sent; vip goes to the queue as an enter, which sends
    what the source says then; churn_risk is never sent true."""
    runtime = any_runtime
    m = audience_members.c
    both = select(m.customer_id).where(m.audience_slug == "vip")
    stmt = select(m.customer_id).where(m.audience_slug == "churn_risk", m.customer_id.in_(both))
    with runtime.source.connect() as conn:
        cid = conn.scalars(stmt.order_by(m.customer_id)).first()
    assert cid is not None, "the seed has customers in vip and churn_risk"
    config = CONFIG.model_copy(update={"audiences": ["vip", "churn_risk"], "batch_size": 256})
    planner = BackfillPlanner(runtime, config, "bf", page_size=4096)
    (page,) = list(planner.pages())
    (item,) = [i for batch in page.batches for i in batch.items if i.customer_id == cid]
    assert item.source_ref == f"bf|churn_risk,vip|{cid}"
    assert dict(item.attributes) == {"churn_risk": True, "vip": True}
    with runtime.source.begin() as conn:
        conn.execute(
            delete(audience_members).where(m.audience_slug == "churn_risk", m.customer_id == cid)
        )

    results = send_batches(runtime, page.batches, "audience_backfill", "bf", workers=2)

    assert sum(r.held_back for r in results) == 1
    assert cid not in runtime.store.jobs.customers_in_flight([cid])
    waiting = [(r["audience"], r["action"]) for r in delta_rows(runtime) if r["customer_id"] == cid]
    assert waiting == [("vip", "enter")]
    until_drained(runtime)
    held = runtime.store.accepted.for_customers([cid])[cid]
    assert held.get("vip") is True and "churn_risk" not in held


def test_a_quarantined_record_of_two_audiences_replays_as_an_enter_each(runtime):
    from attentive_sync.engine.replay import rederive

    m = audience_members.c
    with runtime.source.connect() as conn:
        cid = conn.scalars(
            select(m.customer_id).where(m.audience_slug == "vip").order_by(m.customer_id)
        ).first()
    ref = BackfillMember.ref("bf", ["newsletter", "vip"], cid)
    runtime.store.quarantine.add("backfill", ref, "invalid_phone", "bad", customer_id=cid)
    with runtime.source.begin() as conn:
        conn.execute(
            delete(audience_members).where(m.audience_slug == "newsletter", m.customer_id == cid)
        )
    entries = tuple(runtime.store.quarantine.list())

    done = rederive(runtime.store, runtime.source, entries)
    again = rebuilt_enters(
        runtime.source, ref, f"replay:{entries[0].id}", datetime.now(timezone.utc)
    )

    assert done["deltas_enqueued"] == 1
    assert [(r["audience"], r["customer_id"]) for r in delta_rows(runtime)] == [("vip", cid)]
    # Rebuilding it again gives the same key: the queue stores it once.
    (rebuilt,) = again
    assert rebuilt.delta_key == delta_rows(runtime)[0]["delta_key"]


def test_a_batch_that_fails_in_a_group_sent_one_by_one_hands_the_rest_back(
    any_runtime, emulator, monkeypatch
):
    """Sent one batch at a time, a failure stops the group: the batches after it are not
    sent now, and their customers are not left held (a retry of the group sends them)."""
    runtime = any_runtime
    batches = _backfill_batches(runtime, 6, batch_size=2)
    calls: list[int] = []
    real_submit = runtime.client.submit_bulk_users

    def flaky(users, on_uncertain=None):
        calls.append(len(users))
        if len(calls) == 2:
            raise RetryableError("429 from Attentive")
        return real_submit(users, on_uncertain)

    monkeypatch.setattr(runtime.client, "submit_bulk_users", flaky)
    with pytest.raises(RetryableError):
        send_batches(runtime, batches, "audience_backfill", "bf", workers=1)

    first = {item.customer_id for item in batches[0].items}
    assert _holds_of(runtime, "backfill:bf") == []
    assert (
        runtime.store.jobs.customers_in_flight([i.customer_id for b in batches for i in b.items])
        == first
    )
    monkeypatch.setattr(runtime.client, "submit_bulk_users", real_submit)
    again = send_batches(runtime, batches, "audience_backfill", "bf", workers=1)
    sent = sum(r.records_sent for r in again)
    assert sent == sum(len(b.items) for b in batches[1:])


def test_a_delta_of_a_customer_in_a_page_being_sent_waits_for_its_sends(
    any_runtime, emulator, monkeypatch
):
    """The page's customers are held as one range while its batches go: a delta queued
    meanwhile for a customer inside it (a member or not) is not leased until the sends
    are over; then the range is gone and the delta goes."""
    runtime = any_runtime
    batches = _backfill_batches(runtime, 6, batch_size=2)
    members = sorted(item.customer_id for batch in batches for item in batch.items)
    inside = members[len(members) // 2]
    seen: list[list[int]] = []
    real_submit = runtime.client.submit_bulk_users

    def lease_meanwhile(users, on_uncertain=None):
        if not seen:
            # The customer leaves the audience while the page is being sent.
            with runtime.source.begin() as conn:
                conn.execute(
                    delete(audience_members).where(
                        audience_members.c.audience_slug == "vip",
                        audience_members.c.customer_id == inside,
                    )
                )
            now = datetime.now(timezone.utc)
            runtime.store.deltas.enqueue([NewDelta("vip", inside, "exit", now)])
            seen.append([row.customer_id for row in runtime.store.deltas.lease(10, 60, "x")])
        return real_submit(users, on_uncertain)

    monkeypatch.setattr(runtime.client, "submit_bulk_users", lease_meanwhile)
    results = send_batches(runtime, batches, "audience_backfill", "bf", workers=1)

    assert seen == [[]], "held by the page's range"
    assert _holds_of(runtime, "backfill:bf") == []
    # The page's jobs are unsettled: each holds its own customers' range, and the member
    # waits for them, then goes.
    job_ids = [job for r in results for job in r.job_ids]
    with runtime.store.engine.connect() as conn:
        holders = set(conn.scalars(select(customer_holds.c.holder)))
    assert holders == {f"job:{job_id}" for job_id in job_ids}
    assert runtime.store.deltas.lease(10, 60, "x") == []
    direct_waiter(runtime, 10, "bf")(job_ids)
    assert runtime.store.holds.held(members) == set()
    until_drained(runtime)
    assert at_emulator(emulator, runtime, inside, "vip") is False


def test_a_lost_answer_holds_the_requests_customers_and_the_pages_range_ends(
    any_runtime, emulator, monkeypatch
):
    """A lost answer: the job may exist at Attentive unrecorded. Each batch's customers are
    held on their own (for ``uncertain_hold_seconds``), so nothing newer of theirs is
    leased; the page's range ends with its sends, freeing the customers in it who were not
    in the page."""
    runtime = any_runtime
    batches = _backfill_batches(runtime, 6, batch_size=2)
    members = sorted(item.customer_id for batch in batches for item in batch.items)
    outside = next(c for c in range(members[0], members[-1]) if c not in members)

    def lost(users, on_uncertain=None):
        if on_uncertain is not None:
            on_uncertain()
        raise TransportError("connection lost after the request went out", sent=True)

    monkeypatch.setattr(runtime.client, "submit_bulk_users", lost)
    with pytest.raises(TransportError):
        send_batches(runtime, batches, "audience_backfill", "bf", workers=2)

    assert _holds_of(runtime, "backfill:bf") == []
    assert runtime.store.holds.held(members) == set(members)
    now = datetime.now(timezone.utc)
    deltas = [NewDelta("vip", c, "exit", now) for c in (members[-1], outside)]
    runtime.store.deltas.enqueue(deltas)
    assert [row.customer_id for row in runtime.store.deltas.lease(10, 60, "x")] == [outside]


@pytest.mark.parametrize("cut", ["interrupt", "the hold failed"])
def test_a_send_cut_short_before_its_customers_were_held_keeps_the_pages_range(
    any_runtime, emulator, monkeypatch, cut
):
    """Interrupted mid-send, or unable to hold the customers of what it may have sent: the
    page's range is the only hold left, so it stays until it runs out."""
    runtime = any_runtime
    batches = _backfill_batches(runtime, 6, batch_size=2)
    members = sorted(item.customer_id for batch in batches for item in batch.items)
    failure: BaseException = KeyboardInterrupt() if cut == "interrupt" else RuntimeError("bug")

    def cut_short(users, on_uncertain=None):
        raise failure

    def no_hold(*args, **kwargs):
        raise OperationalError("INSERT", {}, Exception("database is locked"))

    monkeypatch.setattr(runtime.client, "submit_bulk_users", cut_short)
    if cut != "interrupt":
        monkeypatch.setattr("attentive_sync.engine.delivery.submit.hold_uncertain", no_hold)
    with pytest.raises((KeyboardInterrupt, OperationalError)):
        send_batches(runtime, batches, "audience_backfill", "bf", workers=1)

    assert _holds_of(runtime, "backfill:bf") == [members[0]]
    assert runtime.store.holds.held(members) == set(members)
