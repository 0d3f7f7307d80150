"""The shared send and settle steps: retried sends never double-send, lost jobs lose nothing."""

from __future__ import annotations

from datetime import datetime, timezone

from attentive_sync.domain.attributes import build_attributes
from attentive_sync.domain.identifiers import build_identifiers
from attentive_sync.domain.users import BulkUser
from attentive_sync.engine.runs import direct_waiter
from attentive_sync.engine.send import make_batch, send_batch
from attentive_sync.store.jobs import JobItem
from attentive_sync.store.records import NewDelta


def user(cid: int) -> BulkUser:
    return BulkUser(
        customer_id=cid,
        identifiers=build_identifiers({"clientUserId": f"c{cid}"}),
        attributes=build_attributes(custom={"vip": True}),
    )


def test_a_retried_send_skips_what_a_recorded_job_carries(runtime, emulator):
    batch = make_batch(
        [(user(c), JobItem(c, "backfill", f"r|vip|{c}", {"vip": True})) for c in (1, 2, 3)]
    )
    first = send_batch(runtime, batch, "audience_backfill", "t")
    again = send_batch(runtime, batch, "audience_backfill", "t")
    assert first.records_sent == 3 and len(first.job_ids) == 1
    assert again.records_sent == 0 and again.requests == 0
    assert emulator.state.stats()["by_endpoint"]["bulk_user_attributes"]["202"] == 1


def test_a_job_attentive_no_longer_knows_is_settled_as_lost_and_its_rows_retried(runtime, emulator):
    store = runtime.store
    now = datetime.now(timezone.utc)
    store.deltas.enqueue([NewDelta("vip", 5, "enter", now)])
    (row,) = store.deltas.lease(10, 60, "t")
    store.jobs.record_job(
        "job-gone", "audience_incremental", [JobItem(5, "delta", str(row.seq), {"vip": True})]
    )
    wait = direct_waiter(runtime, 5.0)(["job-gone"])
    assert [s.status for s in wait.settled] == ["LOST"] and wait.unfinished == []
    assert wait.total("retried") == 1
    assert store.deltas.counts()["pending"] == 1  # back in the queue for a later run
    assert store.jobs.list_unsettled() == []
