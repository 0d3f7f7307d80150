"""A range hold (one row for a backfill page's customers) holds back every customer id
in it, for leases of both queues and for ``held``, until it is released or runs out."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from attentive_sync.store import Store
from attentive_sync.store.records import NewWrite
from tests.store.helpers import T0, at, delta

# Taking a hold drops the holds the wall clock says have ended: these must outlive it.
LATER = datetime(2100, 1, 1, tzinfo=timezone.utc)


def leased_customers(rows) -> list[int]:
    return sorted(row.customer_id for row in rows)


def test_a_range_hold_holds_back_the_deltas_of_every_customer_in_it(store: Store) -> None:
    store.deltas.enqueue([delta(c) for c in (9, 10, 15, 20, 21)], now=T0)
    store.holds.hold_range(10, 20, "backfill:a", "backfill", LATER)

    assert leased_customers(store.deltas.lease(10, 60, "x", now=at(1))) == [9, 21]
    store.holds.release_range("backfill:a", 10)
    assert leased_customers(store.deltas.lease(10, 60, "x", now=at(2))) == [10, 15, 20]


def test_a_range_hold_holds_back_attribute_writes_too(store: Store) -> None:
    writes = [NewWrite(f"w{c}", "profile", c, {"tier": "Gold"}, T0) for c in (3, 5, 8)]
    store.writes.enqueue(writes, now=T0)
    store.holds.hold_range(4, 7, "backfill:a", "backfill", LATER)

    assert leased_customers(store.writes.lease(10, 60, "x", now=at(1))) == [3, 8]


def test_held_names_the_customers_in_other_holders_ranges_only(store: Store) -> None:
    store.holds.hold_range(100, 199, "backfill:a", "backfill", LATER)
    store.holds.hold_range(300, 300, "backfill:b", "backfill", LATER)
    store.holds.hold([250], "uncertain:x", "uncertain", LATER)
    asked = [1, 100, 150, 199, 200, 250, 300, 301]

    assert store.holds.held(asked, now=at(1)) == {100, 150, 199, 250, 300}
    assert store.holds.held(asked, now=at(1), but="backfill:a") == {250, 300}
    assert store.holds.held([5, 6], now=at(1)) == set()


def test_a_range_hold_runs_out_by_itself(store: Store) -> None:
    store.deltas.enqueue([delta(12)], now=T0)
    store.holds.hold_range(10, 20, "backfill:a", "backfill", at(30))

    assert store.holds.held([12], now=at(29)) == {12}
    assert store.deltas.lease(10, 60, "x", now=at(29)) == []
    assert store.holds.held([12], now=at(31)) == set()
    assert leased_customers(store.deltas.lease(10, 60, "x", now=at(31))) == [12]


def test_releasing_a_range_ends_only_that_range(store: Store) -> None:
    store.holds.hold_range(10, 20, "backfill:a", "backfill", LATER)
    store.holds.hold_range(30, 40, "backfill:a", "backfill", LATER)
    store.holds.hold([10], "uncertain:x", "uncertain", LATER)

    store.holds.release_range("backfill:a", 10)

    assert store.holds.held([10, 15, 35], now=at(1)) == {10, 35}


def test_taking_a_range_again_replaces_it(store: Store) -> None:
    store.holds.hold_range(10, 20, "backfill:a", "backfill", LATER)
    store.holds.hold_range(10, 12, "backfill:a", "backfill", LATER)

    assert store.holds.held([11, 15], now=at(60)) == {11}


def test_a_range_runs_upwards(store: Store) -> None:
    with pytest.raises(ValueError, match="upwards"):
        store.holds.hold_range(20, 10, "backfill:a", "backfill", at(30))
