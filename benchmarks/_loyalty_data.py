"""The relay benchmark's source: a seeded program, and loyalty events queued for it.

The program (20,000 customers, ledger included, so profile attributes have points to
report) is seeded once and cached under ``.bench/``. Events of all thirteen topics carry
the sample payloads the relay tests use and timestamps within the last hour, and go only
to customers whose identifiers the relay can send.
"""

from __future__ import annotations

import sqlite3
import sys
from contextlib import closing
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import select

from attentive_sync.domain.errors import RecordRejected
from attentive_sync.domain.export_config import ExportConfig
from attentive_sync.domain.loyalty.catalogue import EventKey
from attentive_sync.engine.mapping import identifiers_for
from attentive_sync.sources.schema import customers
from attentive_sync.sources.seed import seed_program
from attentive_sync.store import NewEvent, Store
from attentive_sync.store.db import init_db, make_engine
from benchmarks._common import (
    BENCH_DIR,
    ROOT,
    console,
    remove_database,
    schema_fingerprint,
    sqlite_url,
)

CUSTOMERS = 20_000
SEED = 5
SEED_NOW = datetime(2026, 1, 15, tzinfo=timezone.utc)
CONFIG = ExportConfig(
    identifier_mappings={"phone": "phone", "email": "email", "client_user_id": "clientUserId"},
)


def build_source() -> Path:
    """The cached seeded program the events refer to."""
    path = BENCH_DIR / f"relay-{CUSTOMERS}-{schema_fingerprint()}.db"
    if path.exists():
        return path
    BENCH_DIR.mkdir(exist_ok=True)
    building = path.with_suffix(".building")
    remove_database(building)
    init_db(sqlite_url(building))
    engine = make_engine(sqlite_url(building))
    seeded = seed_program(engine, CUSTOMERS, seed=SEED, now=SEED_NOW)
    engine.dispose()
    with closing(sqlite3.connect(building)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    building.rename(path)
    console.print(f"seeded {path} in {seeded.seconds:.1f} s")
    return path


def usable_customers(db_url: str) -> list[int]:
    """Customers whose identifiers the relay can send (the others would be quarantined)."""
    engine, usable = make_engine(db_url), []
    with engine.connect() as conn:
        for row in conn.execute(select(customers).order_by(customers.c.customer_id)).mappings():
            try:
                identifiers_for(CONFIG, dict(row))
            except RecordRejected:
                continue
            usable.append(row["customer_id"])
    engine.dispose()
    return usable


def enqueue_events(db_url: str, events: int) -> int:
    """Queue ``events`` events, topics in rotation, each within the last hour."""
    sys.path.insert(0, str(ROOT / "tests"))  # the sample payloads the relay tests use
    from support.loyalty_samples import SAMPLES

    customers, keys, now = usable_customers(db_url), list(EventKey), datetime.now(timezone.utc)
    new = [
        NewEvent(
            event_id=f"bench-{i}",
            topic=keys[i % len(keys)].value,
            customer_id=customers[i % len(customers)],
            occurred_at=now - timedelta(seconds=i % 3600),
            payload=SAMPLES[keys[i % len(keys)]],
        )
        for i in range(events)
    ]
    with Store.from_url(db_url) as store:
        return store.events.enqueue(new).stored
