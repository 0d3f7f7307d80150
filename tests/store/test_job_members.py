"""A backfill job's members kept as one document, on every back end: what the checks, the
leases, the settlement and a downgrade see of it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from alembic import command
from sqlalchemy import func, select, text

from attentive_sync.store import JobItem, Store
from attentive_sync.store import db as store_db
from attentive_sync.store.job_members import document_of, split_ref
from attentive_sync.store.tables import backfill_job_members, bulk_job_items
from attentive_sync.store.types import utcnow
from tests.store.helpers import T0, at, delta

FLAGS = {"vip": True}


def _members(run_key: str, customers: list[int], audiences: str = "vip") -> list[JobItem]:
    return [JobItem(c, "backfill", f"{run_key}|{audiences}|{c}", FLAGS) for c in customers]


def _count(store: Store, table) -> int:
    with store.engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(table)) or 0)


def test_a_backfill_job_is_one_document_and_reads_back_in_request_order(store: Store) -> None:
    items = [
        JobItem(30, "backfill", "run|vip,gold|30", {"vip": True, "gold": True}),
        *_members("run", [10, 20]),
        JobItem(25, "backfill", "run|gold|25", {"gold": False}),
    ]
    store.jobs.record_job("job-1", "audience_backfill", items, "w", now=T0)

    assert store.jobs.items("job-1") == items
    assert (_count(store, backfill_job_members), _count(store, bulk_job_items)) == (1, 0)


@pytest.mark.parametrize(
    "items",
    [
        [JobItem(1, "backfill", "run|vip|1"), JobItem(2, "notice", "n:2")],  # mixed kinds
        [JobItem(1, "backfill", "run|vip|1"), JobItem(2, "backfill", "other|vip|2")],  # runs
        [JobItem(1, "backfill", "vip:1")],  # not a member ref
        [JobItem(1, "backfill", "run|vip|01")],  # reads back as another ref
        [JobItem(2, "backfill", "run|vip|1")],  # another customer's ref
    ],
)
def test_items_a_document_cannot_give_back_exactly_are_kept_as_rows(
    store: Store, items: list[JobItem]
) -> None:
    assert document_of(items) is None
    store.jobs.record_job("job-1", "audience_backfill", items, "w", now=T0)
    assert store.jobs.items("job-1") == items
    assert (_count(store, backfill_job_members), _count(store, bulk_job_items)) == (
        0,
        len(items),
    )


@pytest.mark.parametrize(
    ("ref", "parts"),
    [
        ("run|vip|7", ("run", "vip", 7)),
        ("a|b|vip,gold|7", ("a|b", "vip,gold", 7)),
        ("run|vip|-7", ("run", "vip", -7)),
        ("run|vip|+7", None),
        ("run|vip|7 ", None),
        ("vip|7", None),
        ("run|vip|", None),
    ],
)
def test_a_member_ref_splits_only_when_it_reads_back_to_itself(ref: str, parts) -> None:
    assert split_ref(ref) == parts


def test_the_checks_find_what_a_document_carries(store: Store) -> None:
    store.jobs.record_job("job-1", "audience_backfill", _members("run", [10, 12, 14]), now=T0)
    store.jobs.record_job("job-2", "audience_backfill", _members("other", [11]), now=T0)
    asked = ["run|vip|10", "run|vip|11", "run|gold|12", "run|vip|14", "other|vip|11", "x"]

    assert store.jobs.carried("backfill", asked) == {"run|vip|10", "run|vip|14", "other|vip|11"}
    assert store.jobs.in_flight("backfill", asked) == {"run|vip|10", "run|vip|14", "other|vip|11"}
    assert store.jobs.carried("notice", asked) == set()
    assert store.jobs.customers_in_flight([9, 10, 11, 13, 14, 15]) == {10, 11, 14}
    assert store.jobs.last_member_carried("run") == 14
    assert store.jobs.last_member_carried("other") == 11
    assert store.jobs.last_member_carried("ru") == 0

    assert store.jobs.mark_settled("job-1", 3, 0, now=at(1))
    # Carried for good (a resumed run must not send it again), in flight no longer.
    assert store.jobs.carried("backfill", asked) == {"run|vip|10", "run|vip|14", "other|vip|11"}
    assert store.jobs.in_flight("backfill", asked) == {"other|vip|11"}
    assert store.jobs.customers_in_flight([9, 10, 11, 13, 14, 15]) == {11}
    assert store.jobs.last_member_carried("run") == 14


def test_an_unsettled_document_holds_its_customer_range_back_until_it_settles(
    store: Store,
) -> None:
    """A delta of a customer the job carries, or of one inside its range, waits for the
    settlement (as behind an items row); outside the range nothing waits."""
    # On the real clock: taking a hold drops the holds that ended by then.
    now = utcnow()
    store.jobs.record_job("job-1", "audience_backfill", _members("run", [10, 14]), now=now)
    store.holds.hold([99], "uncertain:x", "uncertain", now + timedelta(days=1))
    store.deltas.enqueue([delta(c) for c in (9, 10, 12, 14, 15)], now=T0)

    later = now + timedelta(seconds=1)
    assert store.holds.held([9, 10, 12, 14, 15], now=later) == {10, 12, 14}
    leased = store.deltas.lease(10, 60, "w", now=later)
    assert sorted(row.customer_id for row in leased) == [9, 15]

    assert store.jobs.mark_settled("job-1", 2, 0, now=later)
    assert store.holds.held([9, 10, 12, 14, 15, 99], now=later) == {99}, "only its own hold ends"
    leased = store.deltas.lease(10, 60, "w2", now=later)
    assert sorted(row.customer_id for row in leased) == [10, 12, 14]


def test_a_settlement_that_fails_keeps_the_documents_hold(store: Store, monkeypatch) -> None:
    from attentive_sync.store import jobs as jobs_module

    store.jobs.record_job("job-1", "audience_backfill", _members("run", [10, 14]), now=T0)

    def broken(*args, **kwargs):
        raise RuntimeError("the disk is full")

    monkeypatch.setattr(jobs_module.job_members, "end_hold_in", broken)
    with pytest.raises(RuntimeError):
        store.jobs.mark_settled("job-1", 2, 0, now=at(1))
    assert store.holds.held([10, 12], now=at(2)) == {10, 12}
    assert store.jobs.customers_in_flight([10, 14]) == {10, 14}


def test_a_downgrade_writes_documents_back_as_rows_and_ends_their_holds(store_url: str) -> None:
    items = [
        JobItem(30, "backfill", "run|vip,gold|30", {"vip": True, "gold": 2**62}),
        *_members("run", [10, 20]),
    ]
    later = T0 + timedelta(days=365 * 100)
    with Store.from_url(store_url) as store:
        store.init()
        store.jobs.record_job("job-1", "audience_backfill", items, "w", now=T0)
        store.holds.hold([5], "uncertain:x", "uncertain", later)
        with store.engine.begin() as connection:
            command.downgrade(store_db.alembic_config(connection), "0008")
            holders = connection.scalars(text("SELECT holder FROM customer_holds")).all()
            rows = connection.execute(
                text("SELECT idx, customer_id, source_ref FROM bulk_job_items ORDER BY idx")
            ).all()
        assert holders == ["uncertain:x"]
        assert [tuple(row) for row in rows] == [
            (0, 30, "run|vip,gold|30"),
            (1, 10, "run|vip|10"),
            (2, 20, "run|vip|20"),
        ]
        store.init()
        # Back at the head, the job is read from its rows, as recorded.
        assert store.jobs.items("job-1") == items
        assert store.jobs.customers_in_flight([10, 20, 25, 30]) == {10, 20, 30}


def test_a_job_id_too_long_for_a_holder_name_is_still_found(store: Store) -> None:
    """A holder name is cut at 200 characters; the job behind it is found by its prefix."""
    long_id = "j" * 200
    store.jobs.record_job(long_id, "audience_backfill", _members("run", [10, 14]), now=T0)
    store.jobs.record_job("job-2", "audience_backfill", _members("run", [20]), now=T0)

    assert store.jobs.customers_in_flight([10, 12, 14, 20]) == {10, 14, 20}
    assert store.jobs.mark_settled(long_id, 2, 0, now=at(1))
    assert store.jobs.customers_in_flight([10, 12, 14, 20]) == {20}
