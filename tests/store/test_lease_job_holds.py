"""A lease skips a customer while any unsettled job carries them, found without reading
the items of the queue's own jobs: those jobs hold their customers back through their
rows in flight, or, where a row cannot, by a hold of their own until they settle."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from attentive_sync.store import JobItem, Store
from attentive_sync.store.holds import job_holder
from attentive_sync.store.records import NewWrite
from tests.store.helpers import T0, at, delta


def customers(rows) -> list[tuple[int, str]]:
    return [(row.customer_id, row.action) for row in rows]


def test_a_job_whose_run_lost_its_lease_holds_the_customer_until_it_settles(
    store: Store,
) -> None:
    store.deltas.enqueue([delta(1), delta(1, "exit", minute=1)], now=T0)
    (enter,) = store.deltas.lease(1, 60, "w", now=T0)
    # w's lease runs out; v takes the row, sends it and settles its job.
    (again,) = store.deltas.lease(1, 60, "v", now=at(61))
    assert again.seq == enter.seq
    item = JobItem(1, "delta", str(enter.seq), {"vip": True})
    store.jobs.record_job("job-v", "audience_incremental", [item], "v", now=at(62))
    # w's submission went out before it lost the lease: its job is recorded late.
    store.jobs.record_job("job-w", "audience_incremental", [item], "w", now=at(63))
    assert store.deltas.get([enter.seq])[0].job_id == "job-v", "w moved no row"
    store.deltas.ack([enter.seq], by="job-v")
    store.jobs.mark_settled("job-v", 1, 0, now=at(64))

    # job-w may still land at Attentive: customer 1's exit waits for it.
    assert store.deltas.lease(10, 60, "x", now=at(65)) == []
    store.jobs.mark_settled("job-w", 1, 0, now=at(66))
    assert customers(store.deltas.lease(10, 60, "x", now=at(67))) == [(1, "exit")]


def test_a_row_parked_while_its_job_runs_holds_the_customer_until_the_job_settles(
    store: Store,
) -> None:
    store.deltas.enqueue([delta(1), delta(1, "exit", minute=1), delta(2)], now=T0)
    (enter,) = store.deltas.lease(1, 60, "w", now=T0)
    item = JobItem(1, "delta", str(enter.seq), {"vip": True})
    store.jobs.record_job("job-1", "audience_incremental", [item], "w", now=at(1))

    # A person parks the row while its job runs at Attentive.
    assert store.deltas.quarantine([enter.seq], "manual", "parked by hand", by=None) == 1

    assert customers(store.deltas.lease(10, 60, "x", now=at(2))) == [(2, "enter")]
    store.jobs.mark_settled("job-1", 0, 0, now=at(3))
    assert customers(store.deltas.lease(10, 60, "x", now=at(4))) == [(1, "exit")]


def test_a_job_of_queue_rows_that_carries_other_records_holds_their_customers(
    store: Store,
) -> None:
    store.deltas.enqueue([delta(1)], now=T0)
    (enter,) = store.deltas.lease(1, 60, "w", now=T0)
    items = [
        JobItem(1, "delta", str(enter.seq), {"vip": True}),
        JobItem(5, "backfill", "initial|vip|5", {"vip": True}),
    ]
    store.jobs.record_job("job-1", "audience_incremental", items, "w", now=at(1))
    store.deltas.enqueue([delta(5, "exit", minute=1)], now=at(2))

    assert store.deltas.lease(10, 60, "x", now=at(3)) == []
    store.jobs.mark_settled("job-1", 2, 0, now=at(4))
    assert customers(store.deltas.lease(10, 60, "x", now=at(5))) == [(5, "exit")]


def test_a_job_whose_rows_all_went_inflight_takes_no_hold(store: Store) -> None:
    store.deltas.enqueue([delta(1), delta(1, "exit", minute=1)], now=T0)
    (enter,) = store.deltas.lease(1, 60, "w", now=T0)
    item = JobItem(1, "delta", str(enter.seq), {"vip": True})
    store.jobs.record_job("job-1", "audience_incremental", [item], "w", now=at(1))

    assert store.holds.held([1], now=at(2)) == set(), "the row in flight holds the customer"
    assert store.deltas.lease(10, 60, "x", now=at(2)) == []
    store.deltas.ack([enter.seq], by="job-1")
    assert customers(store.deltas.lease(10, 60, "x", now=at(3))) == [(1, "exit")]


def test_jobs_of_other_kinds_still_hold_back_a_delta_lease(store: Store) -> None:
    """A backfill batch or a profile write in flight carries no delta row: the lease finds
    the backfill job through its range hold, and the profile write through its row, in
    flight in the writes queue (that job keeps its items as one document)."""
    store.jobs.record_job(
        "job-b", "audience_backfill", [JobItem(1, "backfill", "initial|vip|1", {"vip": True})]
    )
    store.writes.enqueue([NewWrite("profile:2:1", "profile", 2, {"tier": "gold"}, T0)], now=T0)
    (write,) = store.writes.lease(1, 60, "w", now=T0)
    profile = JobItem(2, "write", str(write.seq), {"tier": "gold"})
    store.jobs.record_job("job-p", "loyalty_profile", [profile], "w", now=at(1))
    store.deltas.enqueue([delta(1), delta(2), delta(3)], now=at(2))

    assert customers(store.deltas.lease(10, 60, "x", now=at(3))) == [(3, "enter")]
    store.jobs.mark_settled("job-b", 1, 0, now=at(4))
    store.jobs.mark_settled("job-p", 1, 0, now=at(4), done=[profile])
    leased = store.deltas.lease(10, 60, "x", now=at(5))
    assert customers(leased) == [(1, "enter"), (2, "enter")]


def test_settling_ends_only_the_jobs_own_hold(store: Store) -> None:
    now = datetime.now(timezone.utc)
    store.deltas.enqueue([delta(1)], now=now)
    (enter,) = store.deltas.lease(1, 60, "w", now=now)
    store.deltas.unlease([enter.seq], by="w")
    item = JobItem(1, "delta", str(enter.seq), {"vip": True})
    store.jobs.record_job("job-1", "audience_incremental", [item], "w")
    store.holds.hold([1], "uncertain:abc", "uncertain", now + timedelta(minutes=10))
    assert store.holds.held([1], but="uncertain:abc") == {1}, "the job's own hold"

    store.jobs.mark_settled("job-1", 1, 0)
    assert store.holds.held([1], but="uncertain:abc") == set()
    assert store.holds.held([1], but=job_holder("job-1")) == {1}, "the other hold stays"
