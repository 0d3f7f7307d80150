"""A queue job's items kept as one document, on every back end: what it reads back, what
the send checks and the leases of the other queues see of it, and what a downgrade does."""

from __future__ import annotations

from datetime import timedelta

import pytest
from alembic import command
from sqlalchemy import func, select, text

from attentive_sync.store import JobItem, Store
from attentive_sync.store import db as store_db
from attentive_sync.store.job_documents import document_of
from attentive_sync.store.records import NewWrite
from attentive_sync.store.tables import bulk_job_documents, bulk_job_items
from tests.store.helpers import T0, at, delta

FLAGS = {"vip": True}


def _count(store: Store, table) -> int:
    with store.engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(table)) or 0)


def _leased_deltas(store: Store, customers: list[int]) -> list[JobItem]:
    store.deltas.enqueue([delta(c) for c in customers], now=T0)
    rows = store.deltas.lease(len(customers), 60, "w", now=T0)
    return [JobItem(r.customer_id, "delta", str(r.seq), FLAGS) for r in rows]


def _leased_write(store: Store, customer: int) -> JobItem:
    write = NewWrite(f"profile:{customer}:1", "profile", customer, {"tier": "gold"}, T0)
    store.writes.enqueue([write], now=T0)
    (row,) = store.writes.lease(1, 60, "w", now=T0)
    return JobItem(customer, "write", str(row.seq), {"tier": "gold"})


def test_a_delta_job_is_one_document_and_reads_back_in_request_order(store: Store) -> None:
    items = _leased_deltas(store, [30, 10, 20])
    items[1] = JobItem(10, "delta", items[1].source_ref, {"vip": False, "big": 2**62})
    store.jobs.record_job("job-1", "audience_incremental", items, "w", now=T0)

    assert store.jobs.items("job-1") == items
    assert (_count(store, bulk_job_documents), _count(store, bulk_job_items)) == (1, 0)


def test_a_write_job_is_one_document_too(store: Store) -> None:
    item = _leased_write(store, 7)
    store.jobs.record_job("job-1", "loyalty_profile", [item], "w", now=T0)
    assert store.jobs.items("job-1") == [item]
    assert (_count(store, bulk_job_documents), _count(store, bulk_job_items)) == (1, 0)


@pytest.mark.parametrize(
    ("kind", "items"),
    [
        ("audience_incremental", [JobItem(1, "delta", "1"), JobItem(2, "backfill", "r|vip|2")]),
        ("audience_incremental", [JobItem(1, "delta", "01")]),  # reads back as another ref
        ("audience_incremental", [JobItem(1, "delta", "١")]),  # a digit, but not ASCII
        ("audience_incremental", [JobItem(1, "write", "1")]),  # a row of another queue
        ("reward_reminder", [JobItem(1, "notice", "n:1")]),  # no queue row at all
    ],
)
def test_items_a_document_cannot_give_back_exactly_are_kept_as_rows(
    store: Store, kind: str, items: list[JobItem]
) -> None:
    assert document_of(items, "delta") is None or kind == "reward_reminder"
    store.jobs.record_job("job-1", kind, items, "w", now=T0)
    assert store.jobs.items("job-1") == items
    assert (_count(store, bulk_job_documents), _count(store, bulk_job_items)) == (0, len(items))


def test_the_send_checks_find_a_documents_customers_through_its_rows_in_flight(
    store: Store,
) -> None:
    items = _leased_deltas(store, [10, 20])
    store.jobs.record_job("job-1", "audience_incremental", items, "w", now=at(1))
    write = _leased_write(store, 30)
    store.jobs.record_job("job-2", "loyalty_profile", [write], "w", now=at(1))

    assert store.jobs.customers_in_flight([5, 10, 20, 30, 40]) == {10, 20, 30}
    store.jobs.mark_settled("job-1", 2, 0, now=at(2), done=items, values=items)
    assert store.jobs.customers_in_flight([5, 10, 20, 30, 40]) == {30}
    store.jobs.mark_settled("job-2", 1, 0, now=at(2), done=[write], values=[write])
    assert store.jobs.customers_in_flight([5, 10, 20, 30, 40]) == set()


def test_a_delta_job_in_flight_holds_its_customers_back_from_a_writes_lease(
    store: Store,
) -> None:
    items = _leased_deltas(store, [1])
    store.jobs.record_job("job-1", "audience_incremental", items, "w", now=at(1))
    for customer in (1, 2):
        store.writes.enqueue(
            [NewWrite(f"profile:{customer}:2", "profile", customer, {"tier": "silver"}, T0)],
            now=at(2),
        )

    assert [r.customer_id for r in store.writes.lease(10, 60, "x", now=at(3))] == [2]
    store.jobs.mark_settled("job-1", 1, 0, now=at(4), done=items, values=items)
    assert [r.customer_id for r in store.writes.lease(10, 60, "x", now=at(5))] == [1]


def test_a_job_that_could_not_move_its_rows_holds_its_customers_itself(store: Store) -> None:
    """The run's lease ran out and another run took the row: the job's document says
    nothing to anyone, so the job holds its customer until it settles."""
    (item,) = _leased_deltas(store, [1])
    store.deltas.unlease([int(item.source_ref)], by="w")
    store.jobs.record_job("job-1", "audience_incremental", [item], "w", now=at(1))

    assert store.jobs.items("job-1") == [item]
    assert store.holds.held([1], now=at(2)) == {1}
    store.writes.enqueue([NewWrite("profile:1:2", "profile", 1, {"tier": "x"}, T0)], now=at(2))
    assert store.writes.lease(10, 60, "x", now=at(3)) == []
    store.jobs.mark_settled("job-1", 1, 0, now=at(4))
    assert store.holds.held([1], now=at(5)) == set()
    assert [r.customer_id for r in store.writes.lease(10, 60, "x", now=at(5))] == [1]


def test_a_downgrade_writes_documents_back_as_rows(store_url: str) -> None:
    with Store.from_url(store_url) as store:
        store.init()
        items = _leased_deltas(store, [30, 10])
        items[0] = JobItem(30, "delta", items[0].source_ref, {"vip": True, "big": 2**62})
        store.jobs.record_job("job-1", "audience_incremental", items, "w", now=T0)
        with store.engine.begin() as connection:
            command.downgrade(store_db.alembic_config(connection), "0009")
            rows = connection.execute(
                text("SELECT idx, customer_id, source_kind, source_ref FROM bulk_job_items")
            ).all()
        assert sorted(tuple(row) for row in rows) == [
            (0, 30, "delta", items[0].source_ref),
            (1, 10, "delta", items[1].source_ref),
        ]
        store.init()
        # Back at the head, the job is read from its rows, as recorded.
        assert store.jobs.items("job-1") == items
        assert store.jobs.customers_in_flight([10, 20, 30]) == {10, 30}
        later = T0 + timedelta(days=1)
        store.jobs.mark_settled("job-1", 2, 0, now=later, done=items, values=items)
        assert store.jobs.customers_in_flight([10, 20, 30]) == set()
