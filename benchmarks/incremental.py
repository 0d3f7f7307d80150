"""Benchmark: the incremental flow draining N queued deltas at 100 bulk requests/s.

    .venv/bin/python -m benchmarks.incremental                      # 500,000 deltas, engine
    .venv/bin/python -m benchmarks.incremental --deltas 100000 --mode prefect

The source is the backfill benchmark's (N customers, all members of one audience, 1 in 100
without any identifier); the queue holds one ``enter`` delta per customer, written straight
into ``audience_deltas``. Runs of the incremental export follow each other (as the 30-second
schedule does) until nothing is pending, leased or in flight. The drain can go no faster than
N / 256 / 100 seconds; its ratio to that floor is the figure to watch (target: 80 %).
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import time
from contextlib import closing
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from attentive_sync.engine.audience.export import run_incremental
from attentive_sync.engine.delivery.collaborators import direct_waiter, thread_pool_sender
from attentive_sync.engine.runtime import build_runtime, shared_runtime
from attentive_sync.settings import DEMO_API_KEY, AttentiveSettings, SyncSettings
from benchmarks._audience_data import AUDIENCE, CONFIG, build_source, valid_members
from benchmarks._common import (
    BENCH_DIR,
    BenchError,
    Emulator,
    add_common_arguments,
    child_env,
    console,
    endpoint_counts,
    fresh_copy,
    remove_database,
    run_child,
    run_in_child,
    show,
    show_stages,
    sqlite_url,
)

JOB_DELAY = 0.5
BULK_LIMIT = 100
USERS_PER_REQUEST = 256
SEND_WORKERS = 8
WAIT_SECONDS = 20.0


def queue_deltas(db: Path, deltas: int) -> None:
    """One ``enter`` delta per customer, pending, in customer order."""
    now = "2026-01-01 00:00:00.000000"
    rows = (
        (f"bench-{cid}", AUDIENCE, cid, "enter", now, now, "pending", 0, now)
        for cid in range(1, deltas + 1)
    )
    with closing(sqlite3.connect(db)) as conn:
        conn.executemany(
            "INSERT INTO audience_deltas (delta_key, audience, customer_id, action, occurred_at,"
            " enqueued_at, state, attempts, next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        conn.commit()


def run_engine(db_url: str, base_url: str, deadline: float) -> dict[str, Any]:
    """``run_incremental`` again and again, as the schedule would, until the queue is empty."""
    runtime = build_runtime(
        SyncSettings(db_url=db_url),
        AttentiveSettings(api_key=SecretStr(DEMO_API_KEY), base_url=base_url),
    )
    sender = thread_pool_sender(runtime, "bench", SEND_WORKERS)
    return _drain(
        lambda: dict(
            run_incremental(
                runtime, CONFIG, "bench", sender, direct_waiter(runtime, WAIT_SECONDS)
            ).counts
        ),
        runtime.store.deltas.counts,
        deadline,
        runtime.client,
    )


def run_prefect(db_url: str, base_url: str, deadline: float) -> dict[str, Any]:
    """The audience-incremental flow, run after run, in this process."""
    os.environ.update(
        ATTENTIVE_SYNC_DB_URL=db_url, ATTENTIVE_BASE_URL=base_url, ATTENTIVE_API_KEY=DEMO_API_KEY
    )
    from attentive_sync.flows.audience import audience_incremental

    runtime = shared_runtime()
    return _drain(
        lambda: audience_incremental(config=CONFIG, wait_seconds=WAIT_SECONDS),
        runtime.store.deltas.counts,
        deadline,
        runtime.client,
    )


def _drain(run: Any, counts: Any, deadline: float, client: Any) -> dict[str, Any]:
    started, started_cpu = time.perf_counter(), time.process_time()
    totals: dict[str, int] = {}
    runs, last_send = 0, started
    stop_at = started + deadline
    while time.perf_counter() < stop_at:
        sent_before = totals.get("records_sent", 0)
        for name, value in run().items():
            totals[name] = totals.get(name, 0) + value
        runs += 1
        if totals.get("records_sent", 0) > sent_before:
            last_send = time.perf_counter()
        left = counts()
        print(f"{time.strftime('%X')} run {runs}: {left}", file=sys.stderr)
        if left["pending"] + left["leased"] + left["inflight"] == 0:
            break
    ended = time.perf_counter()
    return {
        "wall_seconds": ended - started,
        "drain_seconds": last_send - started,
        "runs": runs,
        "counts": totals,
        "left": counts(),
        "submit_cpu_seconds": time.process_time() - started_cpu,
        "client_requests": client.requests_sent,
    }


def accepted_in_store(db: Path) -> int:
    with closing(sqlite3.connect(db)) as conn:
        query = "SELECT count(*) FROM accepted_attributes WHERE name = ?"
        return int(conn.execute(query, (AUDIENCE,)).fetchone()[0])


def measure(mode: str, deltas: int, template: Path, timeout: float) -> dict[str, Any]:
    db = fresh_copy(template, f"incremental-run-{mode}.db")
    queue_deltas(db, deltas)
    args = ["--child", mode, "--db", str(db), "--deltas", str(deltas)]
    with Emulator(JOB_DELAY, BENCH_DIR / f"incremental-{mode}-emulator.log") as emulator:
        args += ["--base-url", emulator.base_url]
        log = BENCH_DIR / f"incremental-{mode}.log"
        console.print(f"{time.strftime('%X')} {mode}: {deltas:,} deltas (log: {log})")
        load = os.getloadavg()[0]
        result = run_child("benchmarks.incremental", args, child_env(), timeout, log)
        result["load"] = f"{load:.2f} / {os.getloadavg()[0]:.2f}"
        stats = emulator.stats()
        result["emulator_cpu_seconds"] = emulator.cpu_seconds()
    result["submits"] = endpoint_counts(stats, "bulk_user_attributes")
    result["throttled"] = stats["throttled"]
    result["accepted_in_store"] = accepted_in_store(db)
    remove_database(db)
    return result


def report(mode: str, deltas: int, r: dict[str, Any]) -> None:
    floor = deltas / USERS_PER_REQUEST / BULK_LIMIT
    drain = r["drain_seconds"]
    counts, valid = r["counts"], valid_members(deltas)
    cpu, server = r["cpu_seconds"], r.get("server_cpu_seconds", 0.0)
    sent, parked = counts.get("records_sent", 0), counts.get("quarantined", 0)
    rows: list[tuple[str, object]] = [
        ("deltas (customers with an identifier)", f"{deltas:,} ({valid:,})"),
        ("runs of the incremental export", r["runs"]),
        ("drain time (first run start .. last run that sent)", f"{drain:.1f} s"),
        ("rate-limit floor N/256/100", f"{floor:.1f} s ({floor / drain:.0%} of ceiling)"),
        ("deltas/s while draining", f"{deltas / drain:,.0f}"),
        ("wall time (settling included)", f"{r['wall_seconds']:.1f} s"),
        ("CPU engine process", f"{cpu:.1f} s ({1e6 * cpu / deltas:.1f} us per delta)"),
        ("CPU Prefect server", f"{server:.1f} s ({1e6 * server / deltas:.1f} us per delta)"),
        ("CPU emulator", f"{r['emulator_cpu_seconds']:.1f} s"),
        ("peak RSS engine", f"{r['peak_rss_mb']:.0f} MB"),
        ("bulk submits / 429s received", f"{sum(r['submits'].values()):,} / {r['throttled']:,}"),
        ("records sent / quarantined", f"{sent:,} / {parked:,}"),
        ("accepted in the store", f"{r['accepted_in_store']:,}"),
        ("left in the queue", str({k: v for k, v in r["left"].items() if v})),
        ("every valid delta accepted", "yes" if r["accepted_in_store"] == valid else "NO"),
        ("load average at start / end", r["load"]),
    ]
    show(f"Incremental drain, {mode} mode", rows)
    if r.get("stages"):
        show_stages(r["stages"], deltas)


def child(args: argparse.Namespace) -> None:
    db_url = sqlite_url(Path(args.db))
    deadline = 3 * args.deltas / USERS_PER_REQUEST / BULK_LIMIT + 120
    run = run_engine if args.child == "engine" else run_prefect
    run_in_child(lambda: run(db_url, args.base_url, deadline), args.profile)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deltas", type=int, default=500_000)
    add_common_arguments(parser, default_mode="engine")
    args = parser.parse_args(argv)
    if args.child:
        child(args)
        return 0
    modes = ("engine", "prefect") if args.mode == "both" else (args.mode,)
    timeout = args.timeout or 600 + 0.002 * args.deltas
    try:
        template = build_source(args.deltas)
        for mode in modes:
            report(mode, args.deltas, measure(mode, args.deltas, template, timeout))
    except BenchError as exc:
        console.print(f"[red]{exc}[/red]")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
