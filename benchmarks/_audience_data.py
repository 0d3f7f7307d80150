"""The backfill benchmark's source: N customers, all members of one audience.

Generated straight into the reference tables with ``executemany`` (10-15 s per million)
and cached under ``.bench/``. One customer in 100 has no identifier at all and must be
quarantined; the others carry unique phones in four notations, emails and client user ids.
"""

from __future__ import annotations

import sqlite3
import time
from contextlib import closing
from pathlib import Path

from attentive_sync.domain.export_config import ExportConfig
from attentive_sync.store.db import init_db
from benchmarks._common import (
    BENCH_DIR,
    console,
    remove_database,
    schema_fingerprint,
    sqlite_url,
)

AUDIENCE = "bench_members"
CONFIG = ExportConfig(
    audiences=[AUDIENCE],
    identifier_mappings={"phone": "phone", "email": "email", "client_user_id": "clientUserId"},
    attribute_mappings={"first_name": "firstName"},
    custom_attributes=["tier"],
)
CHUNK = 100_000

AREAS = ("415", "212", "312", "512", "206", "305", "303", "617", "404", "503", "602", "615")
# Exchanges 200-999 minus N11 service codes and the 555 fiction block: all really assigned.
EXCHANGES = tuple(str(e) for e in range(200, 1000) if e % 100 != 11 and e != 555)
PHONE_FORMATS = ("+1{a}{e}{n}", "({a}) {e}-{n}", "{a}-{e}-{n}", "{a}.{e}.{n}")
NAMES = ("Olivia", "Liam", "Emma", "Noah", "Ava", "Elijah", "Sophia", "James", "Mia", "Leo")
TIERS = ("Bronze", "Silver", "Gold")
PLACES = ",".join("?" * 18)  # the customers table's columns


def has_identifier(cid: int) -> bool:
    return cid % 100 != 0


def valid_members(members: int) -> int:
    return members - members // 100


def customer_row(cid: int) -> tuple[object, ...]:
    """One customer in table column order; every identifier is unique to its customer."""
    if not has_identifier(cid):
        phone = email = client_user_id = None
    else:
        line, block = f"{cid % 10_000:04d}", cid // 10_000
        area = AREAS[block // len(EXCHANGES) % len(AREAS)]
        fmt = PHONE_FORMATS[cid % len(PHONE_FORMATS)]
        phone = fmt.format(a=area, e=EXCHANGES[block % len(EXCHANGES)], n=line)
        phone = phone if cid % 5 else None
        email = f"member{cid}@example.com" if cid % 5 != 1 else None
        client_user_id = f"cu_{cid:08d}" if cid % 3 else None
    return (
        cid, phone, email, client_user_id, None, None, NAMES[cid % len(NAMES)], None,
        None, None, None, "US", None, "2024-01-01 00:00:00.000000", None,
        TIERS[cid % len(TIERS)], None, None,
    )  # fmt: skip


def _fill(conn: sqlite3.Connection, members: int) -> None:
    conn.execute("PRAGMA synchronous=OFF")  # a crashed build is simply built again
    conn.execute("INSERT INTO audiences VALUES (?, ?, ?)", (AUDIENCE, "Benchmark", "2020-01-01"))
    joined = "2024-06-01 00:00:00.000000"
    for first in range(1, members + 1, CHUNK):
        ids = range(first, min(first + CHUNK, members + 1))
        conn.executemany(f"INSERT INTO customers VALUES ({PLACES})", map(customer_row, ids))
        conn.executemany(
            "INSERT INTO audience_members VALUES (?, ?, ?)", ((AUDIENCE, c, joined) for c in ids)
        )
        conn.commit()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def build_source(members: int) -> Path:
    """The cached source database for ``members`` (built on first use)."""
    path = BENCH_DIR / f"backfill-{members}-{schema_fingerprint()}.db"
    if path.exists():
        return path
    BENCH_DIR.mkdir(exist_ok=True)
    building = path.with_suffix(".building")
    remove_database(building)
    started = time.perf_counter()
    init_db(sqlite_url(building))
    with closing(sqlite3.connect(building)) as conn:
        _fill(conn, members)
    building.rename(path)
    console.print(f"built {path} in {time.perf_counter() - started:.1f} s")
    return path
