"""Time the computed loyalty notices end to end (SQL + pandas) on a large SQLite program.

    python benchmarks/notices.py                    # 1,000,000 customers, ~10 ledger rows each
    python benchmarks/notices.py --customers 50000  # a quick run
    python benchmarks/notices.py --db path/to.db    # reuse (or build) a database at that path

The database is built once with numpy and ``executemany`` and cached under ``.bench/``, so
reruns only measure. Each computation runs in its own child process, so its peak RSS is its
own and not the builder's. Targets: reminder < 60 s and < 2 GB; expiry < 30 s.
"""

from __future__ import annotations

import argparse
import json
import resource
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date, datetime, timezone
from pathlib import Path

import numpy as np

AS_OF = datetime(2024, 6, 10, tzinfo=timezone.utc)
ENABLED_AT = "2024-03-01 09:00:00.000000"  # last completed interval on AS_OF: May 1 - Jun 1
INTERVAL_START = np.datetime64("2024-05-01T09:00:00", "us")
YEAR_BEFORE = np.datetime64("2023-06-10T00:00:00", "us")
LEDGER_ROWS_PER_CUSTOMER = 10
CHUNK_CUSTOMERS = 100_000
TARGETS = {"reminder": (60.0, 2048.0), "expiry": (30.0, None)}

SCHEMA = """
CREATE TABLE customers (customer_id BIGINT PRIMARY KEY, enrolled_at DATETIME NOT NULL,
    last_activity_at DATETIME);
CREATE TABLE points_ledger (entry_id BIGINT PRIMARY KEY, customer_id BIGINT NOT NULL,
    points INTEGER NOT NULL, kind TEXT NOT NULL, status TEXT NOT NULL,
    created_at DATETIME NOT NULL, approved_at DATETIME);
CREATE TABLE rewards (reward_id INTEGER PRIMARY KEY, title TEXT, kind TEXT, cost_points INTEGER,
    enabled BOOLEAN, in_stock BOOLEAN, actionable BOOLEAN);
CREATE TABLE program_settings (id INTEGER PRIMARY KEY, points_expiry_enabled BOOLEAN,
    expiry_period_days INTEGER, expiry_notice_days INTEGER, reward_reminder_enabled_at DATETIME);
CREATE TABLE loyalty_events (event_id TEXT PRIMARY KEY, topic TEXT NOT NULL,
    customer_id BIGINT NOT NULL, occurred_at DATETIME NOT NULL, payload JSON, state TEXT NOT NULL);
CREATE TABLE notices_sent (kind TEXT NOT NULL, customer_id BIGINT NOT NULL,
    period_key TEXT NOT NULL, sent_at DATETIME NOT NULL, event_id TEXT,
    UNIQUE (kind, customer_id, period_key));
"""
INDEXES = """
CREATE INDEX ix_points_ledger_customer_id ON points_ledger (customer_id);
CREATE INDEX ix_points_ledger_customer_created ON points_ledger (customer_id, created_at);
"""
REWARDS = [
    (1, "$5 off", "discount_voucher", 500, 1, 1, 1),
    (2, "Free shipping", "free_shipping", 300, 1, 1, 1),
    (3, "$10 gift card", "gift_card", 1000, 1, 1, 1),
    (4, "$20 off", "discount_voucher", 2000, 1, 1, 1),
    (5, "Tote bag", "custom", 1500, 1, 0, 1),
    (6, "VIP event", "custom", 800, 1, 1, 0),
    (7, "Retired offer", "discount_voucher", 100, 0, 1, 1),
    (8, "Slider", "point_slider", 50, 1, 1, 1),
    (9, "Free socks", "free_product_voucher", 200, 1, 1, 1),
    (10, "Auto gift", "seamless_free_product", 250, 1, 1, 1),
]


def _sqlalchemy_text(moments: np.ndarray) -> list[str]:
    """UTC timestamps in the text form SQLAlchemy stores on SQLite (space, microseconds)."""
    return np.strings.replace(np.datetime_as_string(moments, unit="us"), "T", " ").tolist()


def _random_moments(rng: np.random.Generator, start: np.datetime64, days: int, size: int):
    offsets = rng.integers(0, days * 86_400 * 10**6, size).astype("timedelta64[us]")
    return start + offsets


def _customer_rows(rng: np.random.Generator, first: int, count: int) -> Iterator[tuple]:
    ids = np.arange(first, first + count)
    enrolled = _sqlalchemy_text(_random_moments(rng, YEAR_BEFORE, 30, count))
    active = _sqlalchemy_text(_random_moments(rng, np.datetime64("2023-12-01", "us"), 190, count))
    return zip(ids.tolist(), enrolled, active, strict=True)


def _ledger_rows(rng: np.random.Generator, first: int, count: int) -> Iterator[tuple]:
    rows = count * LEDGER_ROWS_PER_CUSTOMER
    customer = np.repeat(np.arange(first, first + count), LEDGER_ROWS_PER_CUSTOMER)
    entry = (customer - 1) * LEDGER_ROWS_PER_CUSTOMER + np.tile(
        np.arange(LEDGER_ROWS_PER_CUSTOMER), count
    )
    kind = rng.choice(np.array(["earned", "spent", "expired"]), rows, p=[0.8, 0.15, 0.05])
    magnitude = rng.integers(10, 300, rows)
    points = np.where(kind == "earned", magnitude, -magnitude // 3)
    status = rng.choice(np.array(["approved", "pending", "void"]), rows, p=[0.88, 0.08, 0.04])
    created = _sqlalchemy_text(_random_moments(rng, YEAR_BEFORE, 366, rows))
    return zip(
        entry.tolist(),
        customer.tolist(),
        points.tolist(),
        kind.tolist(),
        status.tolist(),
        created,
        strict=True,
    )


def _event_rows(rng: np.random.Generator, customers: int) -> Iterator[tuple]:
    """A reward_available event for 5% of customers, inside the interval being reminded."""
    chosen = rng.choice(np.arange(1, customers + 1), customers // 20, replace=False)
    occurred = _sqlalchemy_text(_random_moments(rng, INTERVAL_START, 30, len(chosen)))
    for customer_id, moment in zip(chosen.tolist(), occurred, strict=True):
        yield (f"ev-{customer_id}", "reward_available", customer_id, moment, "done")


def build(path: Path, customers: int) -> None:
    """Write the program to ``path`` (via a temporary file, so a killed build leaves no cache)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial.db")
    partial.unlink(missing_ok=True)
    rng = np.random.default_rng(20240610)
    db = sqlite3.connect(partial)
    db.executescript("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;" + SCHEMA)
    for first in range(1, customers + 1, CHUNK_CUSTOMERS):
        count = min(CHUNK_CUSTOMERS, customers + 1 - first)
        db.executemany("INSERT INTO customers VALUES (?, ?, ?)", _customer_rows(rng, first, count))
        db.executemany(
            "INSERT INTO points_ledger (entry_id, customer_id, points, kind, status, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            _ledger_rows(rng, first, count),
        )
    db.executemany("INSERT INTO rewards VALUES (?, ?, ?, ?, ?, ?, ?)", REWARDS)
    db.execute("INSERT INTO program_settings VALUES (1, 1, 180, 14, ?)", (ENABLED_AT,))
    db.executemany(
        "INSERT INTO loyalty_events (event_id, topic, customer_id, occurred_at, state)"
        " VALUES (?, ?, ?, ?, ?)",
        _event_rows(rng, customers),
    )
    db.executescript(INDEXES + "ANALYZE;")
    db.commit()
    db.close()
    partial.rename(path)


def measure(path: Path, kind: str) -> dict[str, float | int]:
    """Run one computation in this process and report its wall time and peak RSS."""
    import sqlalchemy as sa

    from attentive_sync.engine.notices import plan_expiry_notices, plan_reward_reminders

    engine = sa.create_engine(f"sqlite:///{path}")
    started = time.perf_counter()
    with engine.connect() as conn:
        if kind == "reminder":
            result = plan_reward_reminders(conn, AS_OF)
        else:
            result = plan_expiry_notices(conn, date(AS_OF.year, AS_OF.month, AS_OF.day))
    seconds = time.perf_counter() - started
    return {"seconds": round(seconds, 2), "peak_rss_mb": _peak_rss_mb(), **vars(result.counts)}


def _peak_rss_mb() -> int:
    """This process's RSS high-water mark.

    Linux's ``VmHWM`` starts afresh at exec; ``ru_maxrss`` does not, and would report the
    parent's size at fork (the builder's, after a build) instead of this computation's.
    """
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def _measure_in_child(path: Path, kind: str) -> dict[str, float | int]:
    command = [sys.executable, __file__, "--db", str(path), "--measure", kind]
    completed = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(completed.stdout)


def _verdict(kind: str, stats: dict[str, float | int]) -> str:
    max_seconds, max_mb = TARGETS[kind]
    ok = stats["seconds"] < max_seconds and (max_mb is None or stats["peak_rss_mb"] < max_mb)
    return "within target" if ok else "OVER TARGET"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--db", type=Path, help="database path (default: .bench/notices-N.db)")
    parser.add_argument("--rebuild", action="store_true", help="rebuild even if the file exists")
    parser.add_argument("--measure", choices=sorted(TARGETS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    path = args.db or Path(".bench") / f"notices-{args.customers}.db"
    if args.measure:
        print(json.dumps(measure(path, args.measure)))
        return 0
    if args.rebuild or not path.exists():
        started = time.perf_counter()
        build(path, args.customers)
        print(f"built {path} in {time.perf_counter() - started:.1f} s")
    for kind in TARGETS:
        stats = _measure_in_child(path, kind)
        print(f"{kind}: {json.dumps(stats)} ({_verdict(kind, stats)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
