"""Jobs, accepted attributes, checkpoints and notices, on every back end."""

from __future__ import annotations

import threading

import pytest

from attentive_sync.store import (
    AcceptedAttribute,
    InvalidRecordError,
    JobAlreadyRecordedError,
    JobItem,
    Store,
    UnknownJobError,
)
from attentive_sync.store import jobs as jobs_module
from tests.store.helpers import T0, at, delta, event


def _leased_deltas(store: Store, customers: int) -> list[int]:
    store.deltas.enqueue([delta(c) for c in range(1, customers + 1)], now=T0)
    return [row.seq for row in store.deltas.lease(customers, 60, "w", now=T0)]


def test_record_job_stores_items_in_order_and_marks_carried_rows_inflight(store: Store) -> None:
    seqs = _leased_deltas(store, 2)
    store.events.enqueue([event("e1", customer=7)], now=T0)
    (event_row,) = store.events.lease(1, 60, "w", now=T0)
    items = [
        JobItem(1, "delta", str(seqs[0]), {"vip": True}),
        JobItem(7, "event", str(event_row.seq), {"tier": "gold"}),
        JobItem(9, "backfill", "vip:9", {"vip": True}),
    ]

    job = store.jobs.record_job("job-1", "audience_incremental", items, "w", now=at(1))

    assert (job.status, job.record_count, job.settled, job.run_label) == (
        "SUBMITTED",
        3,
        False,
        "w",
    )
    assert store.jobs.items("job-1") == items
    (carried_delta,) = store.deltas.get([seqs[0]])
    (carried_event,) = store.events.get([event_row.seq])
    assert (carried_delta.state, carried_delta.job_id) == ("inflight", "job-1")
    assert (carried_event.state, carried_event.job_id) == ("inflight", "job-1")
    assert store.deltas.get([seqs[1]])[0].state == "leased", "rows not in the job are untouched"


def test_a_job_takes_only_the_rows_its_own_run_leases(store: Store) -> None:
    """A run whose lease ran out (the row was leased again by another) moves nothing."""
    (seq,) = _leased_deltas(store, 1)
    item = JobItem(1, "delta", str(seq), {"vip": True})
    store.jobs.record_job("job-late", "audience_incremental", [item], "someone-else", now=at(1))
    (row,) = store.deltas.get([seq])
    assert (row.state, row.lease_owner, row.job_id) == ("leased", "w", None)


def test_a_record_job_that_fails_midway_leaves_nothing_behind(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    seqs = _leased_deltas(store, 1)

    def crash(*_: object, **__: object) -> int:
        raise RuntimeError("worker died after the items were written")

    monkeypatch.setattr(jobs_module, "set_inflight", crash)
    with pytest.raises(RuntimeError):
        store.jobs.record_job("job-1", "audience_incremental", [JobItem(1, "delta", str(seqs[0]))])

    with pytest.raises(UnknownJobError):
        store.jobs.get("job-1")
    assert store.deltas.get(seqs)[0].state == "leased"


def test_a_job_id_is_recorded_once(store: Store) -> None:
    item = JobItem(1, "backfill", "vip:1")
    store.jobs.record_job("job-1", "audience_backfill", [item])
    with pytest.raises(JobAlreadyRecordedError):
        store.jobs.record_job("job-1", "audience_backfill", [item])
    assert len(store.jobs.items("job-1")) == 1


@pytest.mark.parametrize(
    ("kind", "items", "message"),
    [
        ("nightly", [JobItem(1, "backfill", "x")], "job kind"),
        ("audience_backfill", [], "at least one"),
        ("audience_backfill", [JobItem(1, "csv", "x")], "source_kind"),
        ("audience_incremental", [JobItem(1, "delta", "vip:1")], "queue seq"),
        ("audience_backfill", [JobItem(1, "backfill", "x", {"t": {1, 2}})], "not JSON"),
    ],
)
def test_bad_jobs_are_refused(store: Store, kind: str, items: list, message: str) -> None:
    with pytest.raises(InvalidRecordError, match=message):
        store.jobs.record_job("job-x", kind, items)


def test_jobs_are_followed_until_settled(store: Store) -> None:
    item = [JobItem(1, "backfill", "vip:1")]
    store.jobs.record_job("job-a", "audience_backfill", item, now=at(1))
    store.jobs.record_job("job-b", "reward_reminder", item, now=at(2))

    assert [j.job_id for j in store.jobs.list_unsettled()] == ["job-a", "job-b"]
    assert [j.job_id for j in store.jobs.list_unsettled("reward_reminder")] == ["job-b"]
    store.jobs.update_status("job-a", "COMPLETED", finished_at=at(30))
    store.jobs.mark_settled("job-a", accepted=1, rejected=0, now=at(40))

    job = store.jobs.get("job-a")
    assert (job.status, job.accepted, job.rejected, job.settled) == ("COMPLETED", 1, 0, True)
    assert job.finished_at == at(30), "settling keeps the finish time the poll saw"
    assert [j.job_id for j in store.jobs.list_unsettled()] == ["job-b"]
    store.jobs.mark_settled("job-b", accepted=0, rejected=1, now=at(50))
    assert store.jobs.get("job-b").finished_at == at(50)


def test_settling_a_job_marks_its_rows_done_and_records_its_values_as_of_its_submission(
    store: Store,
) -> None:
    seqs = _leased_deltas(store, 3)
    items = [
        JobItem(c, "delta", str(seq), {"vip": True}) for c, seq in zip((1, 2, 3), seqs, strict=True)
    ]
    store.jobs.record_job("job-1", "audience_incremental", items, "w", now=at(1))
    # A job submitted later already set customer 2's value: it is not overwritten.
    store.accepted.record_many([AcceptedAttribute(2, "vip", False, "job-2", at(5))])
    # Customer 3's row went back to the queue (retried) before the job settled.
    store.deltas.nack([seqs[2]], "a 5xx for this record", at(60), by="job-1")

    store.jobs.mark_settled("job-1", 3, 0, now=at(10), done=items, values=items[:2])

    assert [row.state for row in store.deltas.get(seqs)] == ["done", "done", "pending"]
    ledger = store.accepted.for_customers([1, 2, 3])
    assert (ledger[1], ledger[2], ledger.get(3)) == ({"vip": True}, {"vip": False}, None)
    assert store.jobs.get("job-1").settled


def test_a_job_settled_already_is_not_settled_again(store: Store) -> None:
    """A run whose claim ran out while it settled comes second: its settlement applies
    nothing, so a ledger value forgotten since (a later job of unknown fate) stays
    forgotten."""
    seqs = _leased_deltas(store, 1)
    items = [JobItem(1, "delta", str(seqs[0]), {"vip": True})]
    store.jobs.record_job("job-1", "audience_incremental", items, "w", now=at(1))
    assert store.jobs.mark_settled("job-1", 1, 0, now=at(10), done=items, values=items)
    store.accepted.forget([(1, "vip")])

    assert not store.jobs.mark_settled("job-1", 0, 1, now=at(20), done=items, values=items)

    assert store.accepted.for_customers([1]) == {}
    job = store.jobs.get("job-1")
    assert (job.accepted, job.rejected, job.finished_at) == (1, 0, at(10))


def test_a_settlement_that_fails_midway_leaves_nothing_behind(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    seqs = _leased_deltas(store, 1)
    items = [JobItem(1, "delta", str(seqs[0]), {"vip": True})]
    store.jobs.record_job("job-1", "audience_incremental", items, "w", now=at(1))

    def crash(*_: object, **__: object) -> int:
        raise RuntimeError("worker died after the ledger was written")

    monkeypatch.setattr(jobs_module, "ack_in", crash)
    with pytest.raises(RuntimeError):
        store.jobs.mark_settled("job-1", 1, 0, done=items, values=items)

    assert not store.jobs.get("job-1").settled
    assert store.accepted.for_customers([1]) == {}
    assert store.deltas.get(seqs)[0].state == "inflight"


def test_a_claim_after_a_poll_that_saw_the_job_finish_stores_its_status(store: Store) -> None:
    item = [JobItem(1, "backfill", "vip:1")]
    store.jobs.record_job("job-a", "audience_backfill", item, now=at(1))
    store.jobs.record_job("job-b", "audience_backfill", item, now=at(2))
    store.jobs.update_status("job-b", "COMPLETED", finished_at=at(20))
    assert store.jobs.claim_for_settling(["job-a"], "run-1", 60, now=at(30)) == ["job-a"]
    assert store.jobs.get("job-a").status == "SUBMITTED", "a claim alone changes no status"

    assert store.jobs.claim_for_settling(["job-a"], "run-2", 60, now=at(31), finished="X") == []
    store.jobs.claim_for_settling(["job-a"], "run-1", 60, now=at(32), finished="FAILED")
    store.jobs.claim_for_settling(["job-b"], "run-1", 60, now=at(33), finished="COMPLETED")

    a, b = store.jobs.get("job-a"), store.jobs.get("job-b")
    assert (a.status, a.finished_at) == ("FAILED", at(32))
    assert (b.status, b.finished_at) == ("COMPLETED", at(20)), "the first finish time stays"
    with pytest.raises(ValueError, match="one job"):
        store.jobs.claim_for_settling(["job-a", "job-b"], "run-1", 60, finished="COMPLETED")


def test_unknown_jobs_are_reported(store: Store) -> None:
    with pytest.raises(UnknownJobError):
        store.jobs.update_status("nope", "COMPLETED")
    with pytest.raises(UnknownJobError):
        store.jobs.mark_settled("nope", 0, 0)


def test_accepted_attributes_keep_the_latest_value(store: Store) -> None:
    store.accepted.record_many(
        [
            AcceptedAttribute(1, "vip", True, "job-1", at(10)),
            AcceptedAttribute(1, "vip", False, "job-2", at(20)),
            AcceptedAttribute(1, "tier", "gold", "job-2", at(20)),
            AcceptedAttribute(2, "vip", True, "job-2", at(20)),
        ]
    )
    # A job that settles late must not overwrite what a newer job set.
    store.accepted.record_many([AcceptedAttribute(1, "vip", True, "job-0", at(5))])
    store.accepted.record_many([AcceptedAttribute(1, "tier", ["a", "b"], "job-3", at(30))])

    assert store.accepted.for_customers([1]).get(1, {}) == {"vip": False, "tier": ["a", "b"]}
    assert store.accepted.for_customers([3]).get(3, {}) == {}


def test_checkpoints_remember_progress_per_run_and_audience(store: Store) -> None:
    assert store.checkpoints.get("run-1", "vip") is None
    store.checkpoints.set("run-1", "vip", 500, 500, now=at(1))
    store.checkpoints.set("run-1", "vip", 900, 800, now=at(2))
    store.checkpoints.set("run-1", "gold", 10, 10, now=at(3))

    saved = store.checkpoints.get("run-1", "vip")
    assert saved is not None
    assert (saved.last_customer_id, saved.members_read, saved.updated_at) == (900, 800, at(2))
    assert store.checkpoints.get("run-2", "vip") is None


def test_a_notice_is_claimed_once_until_released(store: Store) -> None:
    assert store.notices.claim("reward_reminder", 1, "2025-06", "evt-1") is True
    assert store.notices.claim("reward_reminder", 1, "2025-06", "evt-2") is False
    assert store.notices.claim("reward_reminder", 1, "2025-07") is True
    assert store.notices.claim("expiry_notice", 1, "2025-06") is True

    assert store.notices.release("reward_reminder", 1, "2025-06") is True
    assert store.notices.claim("reward_reminder", 1, "2025-06") is True


def test_concurrent_claims_of_one_notice_have_one_winner(store: Store) -> None:
    results: list[bool] = []
    barrier = threading.Barrier(4)

    def claim() -> None:
        barrier.wait()
        results.append(store.notices.claim("expiry_notice", 42, "2025-12-31"))

    threads = [threading.Thread(target=claim) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False, False, False, True]


def test_carried_tells_a_resumed_run_which_records_a_job_already_holds(store: Store) -> None:
    items = [JobItem(1, "backfill", "vip:1"), JobItem(2, "backfill", "vip:2")]
    store.jobs.record_job("job-1", "audience_backfill", items)

    assert store.jobs.carried("backfill", ["vip:1", "vip:3", "vip:2"]) == {"vip:1", "vip:2"}
    assert store.jobs.carried("notice", ["vip:1"]) == set()


def test_a_record_already_waiting_in_the_quarantine_is_not_parked_twice(store: Store) -> None:
    entry = {
        "source_kind": "backfill",
        "source_ref": "bf|vip|5",
        "customer_id": 5,
        "reason_code": "rejected_by_attentive",
        "detail": "phone is not valid",
    }
    store.quarantine.add_many([entry])
    store.quarantine.add_many([entry])
    assert store.quarantine.summary() == {"rejected_by_attentive": 1}
