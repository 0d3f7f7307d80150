"""Benchmark: several processes draining one PostgreSQL delta queue.

Fills a fresh schema with N deltas, starts W processes that each lease a batch, ack it and
lease again until the queue is empty, then checks that every delta was taken exactly once
and that no customer's later delta was taken while an earlier one was still held.

    python benchmarks/queue_drain.py [--url postgresql://postgres@127.0.0.1:5432/test]
        [--deltas 100000] [--customers 20000] [--workers 2] [--batch 1000]

The URL defaults to ATTENTIVE_SYNC_TEST_PG_URL. The schema is dropped afterwards.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import time
import uuid
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.pool import NullPool

from attentive_sync.store import NewDelta, Store, make_engine, normalise_url
from attentive_sync.store.types import utcnow

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"


@dataclass(frozen=True)
class Lease:
    rows: tuple[tuple[int, int], ...]  # (seq, customer_id)
    leased_at: float
    ack_started: float


def drain(url: str, owner: str, batch: int) -> list[Lease]:
    """One worker: lease, ack, repeat until nothing is pending or leased."""
    leases: list[Lease] = []
    with Store.from_url(url) as store:
        while True:
            rows = store.deltas.lease(batch, 300, owner)
            if not rows:
                counts = store.deltas.counts()
                if counts["pending"] + counts["leased"] == 0:
                    return leases
                time.sleep(0.002)
                continue
            leased_at = ack_started = time.monotonic()
            store.deltas.ack([row.seq for row in rows], by=owner)
            pairs = tuple((row.seq, row.customer_id) for row in rows)
            leases.append(Lease(pairs, leased_at, ack_started))


def check(leases: list[Lease], expected: int) -> list[str]:
    """Problems found: rows taken twice or never, customers served out of order."""
    seqs = [seq for lease in leases for seq, _ in lease.rows]
    problems = []
    if len(seqs) != len(set(seqs)):
        problems.append(f"{len(seqs) - len(set(seqs))} deltas taken more than once")
    if len(set(seqs)) != expected:
        problems.append(f"{expected - len(set(seqs))} deltas never taken")
    by_customer: dict[int, list[tuple[int, Lease]]] = defaultdict(list)
    for lease in leases:
        for seq, customer in lease.rows:
            by_customer[customer].append((seq, lease))
    out_of_order = 0
    for held in by_customer.values():
        held.sort(key=lambda pair: pair[0])
        for (_, before), (_, after) in zip(held, held[1:], strict=False):
            out_of_order += after is not before and after.leased_at <= before.ack_started
    if out_of_order:
        problems.append(f"{out_of_order} deltas leased while the customer's previous was held")
    return problems


def fill(store: Store, deltas: int, customers: int) -> float:
    rng = random.Random(42)
    now = utcnow()
    items = (
        NewDelta("vip", rng.randint(1, customers), rng.choice(("enter", "exit")), now, f"b{i}")
        for i in range(deltas)
    )
    started = time.perf_counter()
    result = store.deltas.enqueue(items, now=now)
    assert result.stored == deltas, result
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("ATTENTIVE_SYNC_TEST_PG_URL", DEFAULT_URL))
    parser.add_argument("--deltas", type=int, default=100_000)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=1_000)
    args = parser.parse_args()

    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = make_engine(args.url, poolclass=NullPool)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = normalise_url(args.url).update_query_dict({"options": f"-csearch_path={schema}"})
    url_text = url.render_as_string(hide_password=False)
    try:
        with Store.from_url(url_text) as store:
            store.init()
            fill_seconds = fill(store, args.deltas, args.customers)
            with store.engine.connect() as conn:
                conn.exec_driver_sql("ANALYZE audience_deltas")
        print(
            f"enqueued {args.deltas:,} deltas in {fill_seconds:.2f} s "
            f"({args.deltas / fill_seconds:,.0f} rows/s)"
        )

        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=args.workers, mp_context=spawn) as pool:
            # Start every process (and its imports) before the clock starts.
            warm = [pool.submit(time.sleep, 0.5) for _ in range(args.workers)]
            [future.result() for future in warm]
            started = time.perf_counter()
            futures = [
                pool.submit(drain, url_text, f"w{i}", args.batch) for i in range(args.workers)
            ]
            per_worker = [future.result() for future in futures]
            seconds = time.perf_counter() - started

        leases = [lease for worker in per_worker for lease in worker]
        shares = ", ".join(f"{sum(len(x.rows) for x in w):,}" for w in per_worker)
        print(
            f"drained with {args.workers} processes (batch {args.batch}) in {seconds:.2f} s: "
            f"{args.deltas / seconds:,.0f} rows/s; rows per worker: {shares}"
        )
        problems = check(leases, args.deltas)
        print(
            "check: every delta taken exactly once, customers in order: "
            + ("OK" if not problems else "FAILED - " + "; ".join(problems))
        )
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


if __name__ == "__main__":
    main()
