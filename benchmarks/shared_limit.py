"""Two workers on one API key: do they stay under its bulk limit together, at full speed?

The emulator (``attentive-sync emulator``, the contract's 100 bulk submits/s per key) runs
in its own process and counts every arrival per key and second, 429s included
(``GET /_emulator/rates``). Two worker processes, each with its own ``AttentiveClient`` and
``--threads`` sending threads, submit bulk requests of 256 users (pre-built, distinct
users) as fast as their rate limiter lets them for ``--seconds``. Limiters:

- ``postgres``: the engine's shared bucket in PostgreSQL (``store/ratelimit.py``), what the
  runtime uses on a PostgreSQL store;
- ``local``: each worker with its own in-process bucket, what SQLite runs get: together the
  workers take the budget twice;
- ``prefect``: a Prefect global concurrency limit with slot decay, through
  ``prefect.concurrency.sync.rate_limit``, against a Prefect server this script starts.

Printed: submits accepted per second (and the share of the 100/s ceiling), the busiest
calendar second and the busiest sliding second of arrivals at the emulator, 429s, and what
one slot costs a worker (the limiter's own time per request, waits excluded).

    .venv/bin/python -m benchmarks.shared_limit [--limiter postgres|local|prefect|all]
        [--seconds 30] [--threads 8] [--headroom 0.02]

PostgreSQL comes from ``ATTENTIVE_SYNC_BENCH_PG_URL`` (else the test URL
``ATTENTIVE_SYNC_TEST_PG_URL``); a fresh schema is made for the run and dropped after.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import psutil
from pydantic import SecretStr

from attentive_sync.attentive import AttentiveClient, AttentiveError, RateBucket
from attentive_sync.attentive._ratelimit import BULK, group_rates, process_buckets
from attentive_sync.settings import DEMO_API_KEY, AttentiveSettings
from attentive_sync.store import init_db, make_engine
from attentive_sync.store.ratelimit import PostgresBucket, postgres_buckets
from benchmarks._common import BENCH_DIR, RESULT_MARK, BenchError, Emulator, show
from benchmarks.emulator_throughput import USERS_PER_REQUEST, bulk_user, load_average
from benchmarks.soak import fresh_store, prefect_server

LIMIT = 100
WORKERS = 2
BULK_PATH = "/v2/bulk/user/attributes"
PREFECT_LIMIT = "attentive-bulk-bench"


class Timed:
    """Wraps a bucket to measure time in ``acquire``: all of it, and beyond the wait asked
    for (the limiter's round trip plus late wake-ups)."""

    def __init__(self, inner: RateBucket) -> None:
        self.inner = inner
        self.rate = inner.rate
        self.slots = 0
        self.total = 0.0
        self.overhead = 0.0
        self._lock = threading.Lock()

    def acquire(self) -> float:
        start = time.perf_counter()
        waited = self.inner.acquire()
        spent = time.perf_counter() - start
        with self._lock:
            self.slots += 1
            self.total += spent
            self.overhead += max(0.0, spent - waited)
        return waited

    def observe(self, limit: int | None, remaining: int | None, throttled: bool) -> None:
        self.inner.observe(limit, remaining, throttled)


class SendLog(httpx.HTTPTransport):
    """Notes when each request leaves the worker (wall clock: the workers' logs are merged)."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[float] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(time.time())  # list.append is atomic: no lock needed
        return super().handle_request(request)


def busiest_second(stamps: list[float]) -> int:
    """The most stamps within any one second, wherever it starts."""
    stamps = sorted(stamps)
    best, first = 0, 0
    for last, stamp in enumerate(stamps):
        while stamps[first] <= stamp - 1.0:
            first += 1
        best = max(best, last - first + 1)
    return best


class PrefectBucket:
    """A slot from a Prefect global concurrency limit whose slots decay at the paced rate."""

    def __init__(self, rate: float) -> None:
        from prefect.concurrency.sync import rate_limit

        self.rate = rate
        self._rate_limit = rate_limit

    def acquire(self) -> float:
        self._rate_limit(PREFECT_LIMIT, occupy=1)
        return 0.0  # Prefect does not say how long it waited: all of it counts as cost

    def observe(self, limit: int | None, remaining: int | None, throttled: bool) -> None:
        """Prefect's limit knows nothing of Attentive's headers."""


def create_prefect_limit(name: str, limit: int, rate: float) -> None:
    """``limit`` slots that decay at ``rate`` a second (one slot: requests ``1/rate`` apart)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        with contextlib.suppress(ObjectNotFound):  # left by an earlier run on this server home
            client.delete_global_concurrency_limit_by_name(name)
        client.create_global_concurrency_limit(
            GlobalConcurrencyLimitCreate(
                name=name, limit=limit, slot_decay_per_second=rate, active=True
            )
        )


def uncontended_ms(take: Callable[[], object], times: int = 200) -> float:
    """Median milliseconds of one slot from a limiter that always has one free."""
    take()
    spent = []
    for _ in range(times):
        start = time.perf_counter()
        take()
        spent.append(time.perf_counter() - start)
    return statistics.median(spent) * 1e3


def postgres_uncontended(db: str) -> float:
    engine = make_engine(db)
    try:
        return uncontended_ms(PostgresBucket(engine, "uncontended", 1e9).take)
    finally:
        engine.dispose()


def prefect_uncontended() -> float:
    from prefect.concurrency.sync import rate_limit

    create_prefect_limit("uncontended", 1_000_000, 1_000_000.0)
    return uncontended_ms(lambda: rate_limit("uncontended", occupy=1))


def worker(args: argparse.Namespace) -> None:
    """One worker process: ``--threads`` threads sending pre-built submits until time is up."""
    settings = AttentiveSettings(
        api_key=SecretStr(DEMO_API_KEY),
        base_url=args.base_url,
        rate_limit_headroom=args.headroom,
    )
    buckets: dict[str, RateBucket]
    if args.limiter == "postgres":
        engine = make_engine(args.db)
        buckets = postgres_buckets(engine, settings)
    elif args.limiter == "prefect":
        buckets = {BULK: PrefectBucket(group_rates(settings)[BULK])}
    else:
        buckets = dict(process_buckets(settings))
    timed = Timed(buckets[BULK])
    buckets[BULK] = timed
    sends = SendLog()
    client = AttentiveClient(settings, buckets=buckets, transport=sends)
    per_worker = int(LIMIT * args.seconds / WORKERS * 1.2) + 50
    first = args.worker * 10_000_000
    bodies = [
        orjson.dumps({"users": [bulk_user(first + i * USERS_PER_REQUEST + j) for j in range(256)]})
        for i in range(per_worker)
    ]
    start_at = args.start_at  # both workers start together, on the wall clock
    while time.time() < start_at:
        time.sleep(min(0.05, start_at - time.time()))
    stop_at = time.monotonic() + args.seconds
    lock = threading.Lock()
    counts = {"sent": 0, "failed": 0}

    def send() -> None:
        while time.monotonic() < stop_at:
            with lock:
                if not bodies:
                    return
                body = bodies.pop()
            try:
                client._request(
                    BULK,
                    "POST",
                    BULK_PATH,
                    content=body,
                    headers={"Content-Type": "application/json"},
                )
                outcome = "sent"
            except AttentiveError:
                outcome = "failed"
            with lock:
                counts[outcome] += 1

    cpu = time.process_time()
    threads = [threading.Thread(target=send) for _ in range(args.threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result = {
        **counts,
        "retries": client.retries,
        "slots": timed.slots,
        "overhead_ms": timed.overhead / max(timed.slots, 1) * 1e3,
        "acquire_ms": timed.total / max(timed.slots, 1) * 1e3,
        "cpu": time.process_time() - cpu,
        "bodies_left": len(bodies),
        "sent_at": sends.sent,
        "late_slots": getattr(timed.inner, "late_slots", 0),
    }
    client.close()
    print(RESULT_MARK + json.dumps(result), flush=True)


def run_workers(
    limiter: str, args: argparse.Namespace, base_url: str, db: str, env: dict[str, str]
) -> list[dict[str, Any]]:
    start_at = time.time() + 8.0  # time for both to build their requests
    procs = []
    for index in range(WORKERS):
        log = BENCH_DIR / f"shared-limit-{limiter}-{index}.log"
        command = [sys.executable, "-m", "benchmarks.shared_limit", "--child"]
        command += ["--limiter", limiter, "--worker", str(index), "--db", db]
        command += ["--base-url", base_url, "--start-at", str(start_at)]
        command += ["--seconds", str(args.seconds), "--threads", str(args.threads)]
        command += ["--headroom", str(args.headroom)]
        out = log.open("wb")
        procs.append(
            (subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env), log)
        )
    results = []
    for proc, log in procs:
        if proc.wait(args.seconds + 180) != 0:
            raise BenchError(f"a worker failed; see {log}")
        lines = [x for x in log.read_text().splitlines() if x.startswith(RESULT_MARK)]
        results.append(json.loads(lines[-1][len(RESULT_MARK) :]))
    return results


def measure(limiter: str, args: argparse.Namespace, pg_url: str) -> None:
    env = dict(os.environ)
    with fresh_store("postgres", BENCH_DIR, pg_url) as db:
        init_db(db)
        with Emulator(0.2, BENCH_DIR / f"shared-limit-{limiter}-emulator.log") as emulator:
            if args.emulator_nice:
                psutil.Process(emulator.pid).nice(args.emulator_nice)
            load_before = load_average()
            cpu_before = emulator.cpu_seconds()
            if limiter == "prefect":
                with prefect_server(BENCH_DIR) as prefect_env:
                    os.environ.update(prefect_env)
                    env.update(prefect_env)
                    create_prefect_limit(PREFECT_LIMIT, 1, LIMIT * (1 - args.headroom))
                    results = run_workers(limiter, args, emulator.base_url, db, env)
                    one_slot = prefect_uncontended()
            else:
                results = run_workers(limiter, args, emulator.base_url, db, env)
                one_slot = postgres_uncontended(db) if limiter == "postgres" else 0.0
            emulator_cpu = emulator.cpu_seconds() - cpu_before
            rates = httpx.get(f"{emulator.base_url}/_emulator/rates", timeout=60).json()
    ((_, endpoints),) = rates["keys"].items()
    bulk = endpoints["bulk_user_attributes"]
    per_second = bulk["per_second"]
    # Whole seconds only: the first and last bins are cut by the start and the end.
    full = [per_second[k] for k in sorted(per_second, key=int)[1:-1]]
    accepted = bulk["arrivals"] - bulk["throttled"]
    rate = accepted / args.seconds
    show(
        f"Two workers, one API key, limiter: {limiter} (headroom {args.headroom:.0%})",
        [
            ("threads per worker", args.threads),
            ("submits accepted (worker 1 / worker 2)", " / ".join(str(r["sent"]) for r in results)),
            ("submits accepted/s (share of the 100/s ceiling)", f"{rate:.1f} ({rate / LIMIT:.1%})"),
            ("users/s", f"{rate * USERS_PER_REQUEST:,.0f}"),
            ("busiest second (arrivals, 429s included)", bulk["busiest_second"]),
            ("busiest sliding second (arrivals)", bulk["busiest_sliding_second"]),
            (
                "busiest sliding second of sends, both workers",
                busiest_second([t for r in results for t in r["sent_at"]]),
            ),
            ("seconds above 100", sum(1 for n in per_second.values() if n > LIMIT)),
            ("quietest whole second", min(full) if full else "-"),
            (
                "429s (requests failed after retries)",
                f"{bulk['throttled']} ({sum(r['failed'] for r in results)})",
            ),
            ("one slot from a free limiter, median ms", f"{one_slot:.2f}"),
            (
                "time in the limiter per slot, ms (1 / 2)",
                " / ".join(f"{r['acquire_ms']:.1f}" for r in results),
            ),
            (
                "  of which beyond the wait asked for",
                " / ".join(f"{r['overhead_ms']:.1f}" for r in results),
            ),
            (
                "slots given up for a late wake-up (1 / 2)",
                " / ".join(str(r["late_slots"]) for r in results),
            ),
            ("worker CPU, s (1 / 2)", " / ".join(f"{r['cpu']:.1f}" for r in results)),
            ("emulator CPU, s", f"{emulator_cpu:.1f}"),
            ("load average before / after", f"{load_before} / {load_average()}"),
        ],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--limiter", choices=("postgres", "local", "prefect", "all"), default="postgres"
    )
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--headroom", type=float, default=AttentiveSettings().rate_limit_headroom)
    parser.add_argument(
        "--emulator-nice",
        type=int,
        default=0,
        help="niceness of the emulator process (negative: ahead of other work on the machine, "
        "so its own stalls do not bunch the arrivals it counts)",
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--worker", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    parser.add_argument("--start-at", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        worker(args)
        return
    pg_url = os.environ.get("ATTENTIVE_SYNC_BENCH_PG_URL") or os.environ.get(
        "ATTENTIVE_SYNC_TEST_PG_URL"
    )
    if not pg_url:
        raise SystemExit("set ATTENTIVE_SYNC_BENCH_PG_URL (or ATTENTIVE_SYNC_TEST_PG_URL)")
    BENCH_DIR.mkdir(exist_ok=True)
    limiters = ("postgres", "local", "prefect") if args.limiter == "all" else (args.limiter,)
    for limiter in limiters:
        measure(limiter, args, pg_url)


if __name__ == "__main__":
    main()
