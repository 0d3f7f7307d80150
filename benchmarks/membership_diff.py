"""Benchmark: one membership diff over an audience of N members (default 1,000,000), 1 % changed.

    .venv/bin/python -m benchmarks.membership_diff                    # 1,000,000 members
    .venv/bin/python -m benchmarks.membership_diff --source separate  # source in another file
    .venv/bin/python -m benchmarks.membership_diff --members 100000 --changed 5

The audience's members are the backfill benchmark's source (cached under ``.bench/``). A
fresh copy gets a baseline that matches the membership (as after a backfill and a first
diff), then ``--changed`` % of the audience changes in SQL: half leave, as many new
customers join. A measured child process runs one ``queue_membership_changes`` (the diff,
the queued deltas and the moved baseline, in one transaction) and reports its time, its
peak RSS before and after, and the load average. ``--source separate`` puts the loyalty
source in its own SQLite file, so the diff first copies the membership into the store.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import sys
import time
from contextlib import closing
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from attentive_sync.attentive import AttentiveClient
from attentive_sync.engine.audience.diff import queue_membership_changes
from attentive_sync.engine.runtime import Runtime
from attentive_sync.settings import AttentiveSettings, SyncSettings
from attentive_sync.store import Store, make_engine
from benchmarks._audience_data import AUDIENCE, CONFIG, build_source, customer_row
from benchmarks._common import (
    BENCH_DIR,
    BenchError,
    console,
    emit_result,
    peak_rss_mb,
    remove_database,
    run_child,
    show,
    sqlite_url,
)

DIFF_CONFIG = CONFIG.model_copy(update={"changes_from": "diff"})
PLACES = ",".join("?" * 18)


def prepare(members: int, changed_pct: float, separate: bool) -> tuple[Path, Path, int, int]:
    """A fresh store (and source) whose baseline is the audience, then the changes made."""
    template = build_source(members)
    store = BENCH_DIR / "diff-store.db"
    source = BENCH_DIR / "diff-source.db" if separate else store
    for path in {store, source}:
        remove_database(path)
    shutil.copyfile(template, source)
    if separate:
        shutil.copyfile(template, store)
    leaving = int(members * changed_pct / 100) // 2
    joining = leaving
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")
    with closing(sqlite3.connect(store)) as conn:
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute(
            "INSERT INTO audience_sent_members SELECT audience_slug, customer_id "
            "FROM audience_members WHERE audience_slug = ?",
            (AUDIENCE,),
        )
        conn.execute(
            "INSERT INTO audience_diffs (audience, generation, seeded_at) VALUES (?, 1, ?)",
            (AUDIENCE, now),
        )
        conn.commit()
    step = members // max(leaving, 1)
    gone = [(AUDIENCE, cid) for cid in range(step, members + 1, step)][:leaving]
    new_ids = range(members + 1, members + joining + 1)
    with closing(sqlite3.connect(source)) as conn:
        conn.execute("PRAGMA synchronous=OFF")
        conn.executemany(
            "DELETE FROM audience_members WHERE audience_slug = ? AND customer_id = ?", gone
        )
        conn.executemany(f"INSERT INTO customers VALUES ({PLACES})", map(customer_row, new_ids))
        conn.executemany(
            "INSERT INTO audience_members VALUES (?, ?, ?)",
            ((AUDIENCE, cid, now) for cid in new_ids),
        )
        conn.commit()
    return store, source, joining, len(gone)


def measure(store: Path, source: Path) -> dict[str, Any]:
    """One diff, in this (child) process."""
    sync = SyncSettings(db_url=sqlite_url(store), source_url=sqlite_url(source))
    client = AttentiveClient(
        AttentiveSettings(api_key=SecretStr("unused"), base_url="http://127.0.0.1:9")
    )
    runtime = Runtime(
        store=Store.from_url(sync.db_url),
        source=make_engine(sync.loyalty_url, read_only=True),
        client=client,
        sync=sync,
    )
    rss_before = peak_rss_mb()
    started = time.perf_counter()
    outcome = queue_membership_changes(runtime, DIFF_CONFIG)
    seconds = time.perf_counter() - started
    counts = runtime.store.deltas.counts()
    runtime.close()
    return {
        "seconds": seconds,
        "enters": outcome.enters,
        "exits": outcome.exits,
        "queued": counts["pending"],
        "rss_before_mb": rss_before,
        "peak_rss_mb": peak_rss_mb(),
        "load": os.getloadavg(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--changed", type=float, default=1.0, help="% of the audience changed")
    parser.add_argument("--source", choices=("shared", "separate"), default="shared")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        emit_result(measure(Path(args.child[0]), Path(args.child[1])))
        return 0
    if args.members < 100 or not 0 < args.changed <= 100:
        parser.error("--members must be at least 100 and --changed within (0, 100]")
    try:
        BENCH_DIR.mkdir(exist_ok=True)
        console.print(f"{time.strftime('%X')} preparing {args.members:,} members")
        store, source, joining, leaving = prepare(
            args.members, args.changed, args.source == "separate"
        )
        log = BENCH_DIR / "membership-diff.log"
        child = ["--child", str(store), str(source)]
        r = run_child("benchmarks.membership_diff", child, dict(os.environ), args.timeout, log)
    except BenchError as exc:
        console.print(f"[red]{exc}[/red]")
        return 1
    if (r["enters"], r["exits"], r["queued"]) != (joining, leaving, joining + leaving):
        console.print(f"[red]expected {joining} enters and {leaving} exits, got {r}[/red]")
        return 1
    one, five, fifteen = r["load"]
    show(
        f"Membership diff, {args.members:,} members, {args.changed:g} % changed, "
        f"source {args.source}",
        [
            ("enters / exits queued", f"{r['enters']:,} / {r['exits']:,}"),
            ("time", f"{r['seconds']:.2f} s"),
            ("peak RSS before the diff", f"{r['rss_before_mb']:.0f} MB"),
            ("peak RSS", f"{r['peak_rss_mb']:.0f} MB"),
            ("load average (1, 5, 15 min)", f"{one:.2f}, {five:.2f}, {fifteen:.2f}"),
        ],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
