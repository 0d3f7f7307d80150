"""Time one run of the derived loyalty events (diff, enqueue, snapshot) on a large SQLite program.

    python -m benchmarks.derive                      # 1,000,000 customers, ~10,000,000 ledger rows
    python -m benchmarks.derive --customers 50000    # a quick run
    python -m benchmarks.derive --changed 0.05       # 5 % of customers changed between runs

The program is seeded once with ``seed_program`` on the real schema and cached under
``.bench/`` (rebuilt when the migrations change). Each run works on a fresh copy: derived
events are turned on, a first run records the baseline, then SQL changes ``--changed`` of
the customers (a third each: a new tier, a new insights segment, a new approved ledger row
from an activity rule) and a second run derives their events. Each run is measured in its
own child process (wall time, peak RSS). Target for the second run: < 30 s and < 500 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from benchmarks._common import (
    BENCH_DIR,
    fresh_copy,
    peak_rss_mb,
    remove_database,
    schema_fingerprint,
    sqlite_url,
)

NOW = datetime(2026, 11, 1, tzinfo=timezone.utc)
TARGET_SECONDS, TARGET_MB = 30.0, 500.0


def build(path: Path, customers: int) -> None:
    from attentive_sync.sources.seed import seed_program
    from attentive_sync.store import init_db, make_engine

    partial = path.with_suffix(".partial.db")
    remove_database(partial)
    init_db(sqlite_url(partial))
    engine = make_engine(sqlite_url(partial))
    report = seed_program(engine, customers, seed=7, now=NOW)
    engine.dispose()
    db = sqlite3.connect(partial)
    db.execute("ANALYZE")
    db.commit()
    db.close()  # the last connection checkpoints the WAL into the file before it moves
    partial.rename(path)
    print(
        f"seeded {report.customers:,} customers, {report.ledger_entries:,} ledger rows", flush=True
    )


def change(path: Path, share: float) -> int:
    """Change ``share`` of the customers with set-based SQL, as a brand's systems would."""
    step = max(1, round(1 / share))
    db = sqlite3.connect(path)
    with db:
        db.execute("PRAGMA busy_timeout = 30000")
        chosen = f"customer_id % {step} = 0"
        db.execute(
            "UPDATE customers SET tier = CASE tier WHEN 'Bronze' THEN 'Silver'"
            " WHEN 'Silver' THEN 'Gold' ELSE 'Silver' END"
            f" WHERE {chosen} AND (customer_id / {step}) % 3 = 0"
        )
        db.execute(
            "UPDATE customers SET insights_segment = CASE insights_segment"
            " WHEN 'loyal' THEN 'at_risk' WHEN 'at_risk' THEN 'win_back' ELSE 'loyal' END"
            f" WHERE {chosen} AND (customer_id / {step}) % 3 = 1"
        )
        first = db.execute("SELECT MAX(entry_id) FROM points_ledger").fetchone()[0]
        moment = NOW.strftime("%Y-%m-%d %H:%M:%S.%f")
        db.execute(
            "INSERT INTO points_ledger (entry_id, customer_id, points, kind, status, created_at,"
            " approved_at, rule_name)"
            f" SELECT {first} + customer_id, customer_id, 150, 'earned', 'approved', ?, ?,"
            f" 'Wrote a review' FROM customers WHERE {chosen} AND (customer_id / {step}) % 3 = 2",
            (moment, moment),
        )
        changed = db.execute(f"SELECT COUNT(*) FROM customers WHERE {chosen}").fetchone()[0]
    db.close()
    return int(changed)


def enable(path: Path) -> None:
    db = sqlite3.connect(path)
    with db:
        db.execute(
            "UPDATE program_settings SET derived_events_enabled = 1, approaching_tier_points = 100"
        )
    db.close()


def measure(path: Path) -> dict[str, object]:
    """One derive run in this process: its wall time, peak RSS and report counts."""
    from pydantic import SecretStr

    from attentive_sync.engine.derived import derive, snapshot
    from attentive_sync.engine.loyalty.relay import EventsConfig
    from attentive_sync.engine.runtime import build_runtime
    from attentive_sync.settings import AttentiveSettings, SyncSettings

    runtime = build_runtime(
        SyncSettings(db_url=sqlite_url(path)),
        AttentiveSettings(api_key=SecretStr("unused"), base_url="http://127.0.0.1:9"),
    )
    commit, writing = snapshot.commit, [0.0]

    def timed_commit(*args: object, **kwargs: object) -> object:
        began = time.perf_counter()
        try:
            return commit(*args, **kwargs)  # type: ignore[arg-type]
        finally:
            writing[0] = time.perf_counter() - began

    snapshot.commit = timed_commit  # type: ignore[assignment]
    started = time.perf_counter()
    report = derive(runtime, EventsConfig(), "benchmark", now=NOW)
    seconds = time.perf_counter() - started
    runtime.close()
    counts = {k: v for k, v in report.counts.items() if v}
    figures = {"seconds": round(seconds, 2), "write_transaction_seconds": round(writing[0], 2)}
    return {**figures, "peak_rss_mb": round(peak_rss_mb()), **counts}


def _in_child(path: Path) -> dict[str, object]:
    command = [sys.executable, "-m", "benchmarks.derive", "--measure", str(path)]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--changed", type=float, default=0.01, help="share of customers changed")
    parser.add_argument("--rebuild", action="store_true", help="seed again even if cached")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(args.measure)))
        return 0
    BENCH_DIR.mkdir(exist_ok=True)
    template = BENCH_DIR / f"derive-{args.customers}-{schema_fingerprint()}.db"
    if args.rebuild or not template.exists():
        started = time.perf_counter()
        build(template, args.customers)
        print(f"built {template.name} in {time.perf_counter() - started:.1f} s", flush=True)
    work = fresh_copy(template, "derive-run.db")
    enable(work)
    baseline = _in_child(work)
    print(f"baseline run: {json.dumps(baseline)} (load {_load()})", flush=True)
    changed = change(work, args.changed)
    print(f"changed {changed:,} customers with SQL", flush=True)
    run = _in_child(work)
    ok = float(run["seconds"]) < TARGET_SECONDS and float(run["peak_rss_mb"]) < TARGET_MB
    verdict = "within target" if ok else "OVER TARGET"
    print(f"derive run: {json.dumps(run)} ({verdict}; load {_load()})", flush=True)
    again = _in_child(work)
    print(f"run with nothing changed: {json.dumps(again)} (load {_load()})", flush=True)
    remove_database(work)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
