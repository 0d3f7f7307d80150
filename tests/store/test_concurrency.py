"""Several workers draining one queue: each row taken once, each customer in order."""

from __future__ import annotations

import multiprocessing
import random
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

from attentive_sync.store import NewDelta, Store
from tests.fixtures.drain import check_drained, drain
from tests.store.helpers import T0, at


def _fill(store: Store, deltas: int, customers: int) -> list[int]:
    """Queue ``deltas`` changes spread over ``customers`` (seeded, so runs repeat)."""
    rng = random.Random(7)
    items = [
        NewDelta("vip", rng.randrange(1, customers + 1), rng.choice(("enter", "exit")), T0, f"d{i}")
        for i in range(deltas)
    ]
    assert store.deltas.enqueue(items, now=T0).stored == deltas
    with store.engine.connect() as conn:
        return list(conn.exec_driver_sql("SELECT seq FROM audience_deltas").scalars())


def test_threads_draining_together_take_each_row_once_in_customer_order(
    store: Store, store_url: str
) -> None:
    expected = _fill(store, 2_000, 150)

    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = [pool.submit(drain, store_url, f"thread-{i}", 40) for i in range(3)]
        batches = [batch for future in futures for batch in future.result()]

    check_drained(batches, expected)
    assert store.deltas.counts()["done"] == 2_000


def test_two_processes_drain_twenty_thousand_deltas_exactly_once(pg_url: str) -> None:
    with Store.from_url(pg_url) as store:
        store.init()
        expected = _fill(store, 20_000, 2_000)

        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=2, mp_context=spawn) as pool:
            futures = [pool.submit(drain, pg_url, f"process-{i}", 250) for i in range(2)]
            per_worker = [future.result() for future in futures]

        check_drained([batch for batches in per_worker for batch in batches], expected)
        assert all(per_worker), "both processes took part"
        assert store.deltas.counts()["done"] == 20_000


def test_a_lease_skips_rows_another_worker_holds_locked(pg_url: str) -> None:
    """Two workers in open transactions at once: the second never waits for or takes the
    first one's rows, nor a later row of a customer whose earlier row the first holds."""
    with Store.from_url(pg_url) as store:
        store.init()
        store.deltas.enqueue(
            [NewDelta("vip", c, "enter", T0) for c in (1, 2, 3)]
            + [NewDelta("vip", 1, "exit", at(60))],
            now=T0,
        )
        first = store.engine.connect()
        held = first.exec_driver_sql(
            "SELECT seq FROM audience_deltas WHERE customer_id = 1 AND action = 'enter' FOR UPDATE"
        ).scalar_one()
        try:
            rows = store.deltas.lease(10, 60, "second", now=at(1))
        finally:
            first.rollback()
            first.close()

    assert held not in [row.seq for row in rows]
    assert [(row.customer_id, row.action) for row in rows] == [(2, "enter"), (3, "enter")]
