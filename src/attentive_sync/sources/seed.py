"""A deterministic demo and benchmark program: customers, audiences, ledger, rewards.

The same ``(customers, seed, now)`` always yields the same rows, on SQLite or PostgreSQL,
so a benchmark is repeatable and a demo is reproducible. Customers are generated in fixed
chunks, each from its own seeded generators, so memory stays flat however many are asked
for and the data never depends on how the work was batched.
"""

from __future__ import annotations

import calendar
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from datetime import time as clock

import numpy as np
from sqlalchemy import Connection, Engine, select

from attentive_sync.sources import _ledger, schema
from attentive_sync.sources._bulk import BulkLoader, bulk_loader
from attentive_sync.sources._people import favorite_categories, identity_for
from attentive_sync.sources.errors import SeedError

CHUNK = 10_000  # customers per generated chunk; part of the data's identity, never tuned
COMMIT_EVERY = 5  # chunks per transaction: few transactions, each well inside the page cache

REWARDS: tuple[tuple[object, ...], ...] = (
    # reward_id, title, kind, cost_points, enabled, in_stock, actionable
    (1, "$5 off your next order", "discount_voucher", 100, True, True, True),
    (2, "$15 off your next order", "discount_voucher", 250, True, True, True),
    (3, "Free shipping", "free_shipping", 150, True, True, True),
    (4, "$25 gift card", "gift_card", 500, True, True, True),
    (5, "$50 gift card", "gift_card", 1000, True, False, True),
    (6, "Early access to the summer drop", "custom", 300, True, True, False),
    (7, "Spend points at checkout", "point_slider", 1, True, True, True),
    (8, "Free tote bag", "free_product_voucher", 400, True, True, True),
    (9, "Free socks with any order", "seamless_free_product", 200, True, True, True),
    (10, "$10 off (retired)", "discount_voucher", 200, False, True, True),
)
TIERS: tuple[tuple[str, int, int | None], ...] = (
    ("Bronze", 0, 499),
    ("Silver", 500, 1499),
    ("Gold", 1500, None),
)
AUDIENCES = {
    "vip": "VIP customers",
    "churn_risk": "Churn risk",
    "newsletter": "Newsletter subscribers",
    "big_spenders": "Big spenders",
    "spring_preview": "Spring preview (not launched yet)",
}


@dataclass(frozen=True)
class SeedReport:
    """What the seed wrote and how fast."""

    customers: int
    audience_members: int
    ledger_entries: int
    seconds: float

    @property
    def rows(self) -> int:
        return self.customers + self.audience_members + self.ledger_entries

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float(self.rows)


def default_now() -> datetime:
    """Midnight UTC today: a whole day of reruns produces identical data."""
    return datetime.combine(datetime.now(timezone.utc).date(), clock(), tzinfo=timezone.utc)


def months_before(moment: datetime, months: int) -> datetime:
    """The same day-of-month ``months`` earlier, clamped to that month's length."""
    year, month0 = divmod(moment.year * 12 + moment.month - 1 - months, 12)
    day = min(moment.day, calendar.monthrange(year, month0 + 1)[1])
    return moment.replace(year=year, month=month0 + 1, day=day)


def _tier(earned: int) -> str:
    return [name for name, low, _ in TIERS if earned >= low][-1]


def _segment(rng: random.Random, enrolled: float, idle: float, entries: int) -> str | None:
    if rng.random() < 0.05:
        return None  # not scored yet by the insights model
    if enrolled < 30:
        return "new"
    if idle > 180:
        return "win_back"
    if idle > 90:
        return "at_risk"
    return "loyal" if idle < 60 and entries >= 12 else "active"


def _memberships(rng: random.Random, tier: str, segment: str | None, has_email: bool) -> list[str]:
    odds = {
        "vip": 0.6 if tier == "Gold" else 0.02,
        "churn_risk": 0.7 if segment in ("at_risk", "win_back") else 0.03,
        "newsletter": 0.45 if has_email else 0.02,
        "big_spenders": 0.25 if tier != "Bronze" else 0.03,
    }
    return [slug for slug, p in odds.items() if rng.random() < p]


@dataclass(frozen=True)
class _Chunk:
    customers: list[tuple[object, ...]]
    members: list[tuple[object, ...]]
    ledger: list[tuple[object, ...]]


def _chunk(index: int, total: int, seed: int, first_entry_id: int, now: datetime) -> _Chunk:
    """Customers ``index * CHUNK + 1`` onwards, with their memberships and ledger."""
    first_id, n = index * CHUNK + 1, min(CHUNK, total - index * CHUNK)
    gen, rng = np.random.default_rng([seed, index]), random.Random(f"{seed}/{index}")
    now_us = _ledger.micros(now)
    window_us = _ledger.micros(months_before(now, 13))
    enrolled = _ledger.enrolment_times(gen, n, now_us)
    ledger = _ledger.ledger_for(gen, enrolled, first_id, first_entry_id, now_us, window_us)
    enrolled_text = _ledger.to_text(enrolled)
    last_text = _ledger.to_text(ledger.last_activity_us)

    rows: list[tuple[object, ...]] = []
    member_keys: list[tuple[str, int]] = []
    joined_us: list[int] = []
    for i in range(n):
        cid, last = first_id + i, int(ledger.last_activity_us[i])
        enrolled_days = (now_us - int(enrolled[i])) / _ledger.DAY_US
        idle_days = enrolled_days if last == _ledger.NONE_US else (now_us - last) / _ledger.DAY_US
        identity = identity_for(rng, cid, now.date())
        tier = _tier(int(ledger.lifetime_earned[i]))
        segment = _segment(rng, enrolled_days, idle_days, int(ledger.entry_count[i]))
        favorites = favorite_categories(rng)
        rows.append((cid, *identity, enrolled_text[i], last_text[i], tier, segment, favorites))
        for slug in _memberships(rng, tier, segment, identity[1] is not None):
            member_keys.append((slug, cid))
            joined_us.append(int(enrolled[i]) + int(rng.random() * (now_us - int(enrolled[i]))))
    joined_text = _ledger.to_text(np.array(joined_us, dtype=np.int64))
    members: list[tuple[object, ...]] = [
        (slug, cid, at) for (slug, cid), at in zip(member_keys, joined_text, strict=True)
    ]
    return _Chunk(rows, members, ledger.rows)


def _ensure_empty(conn: Connection, replace: bool) -> None:
    filled = [
        t.name for t in schema.REFERENCE_TABLES if conn.scalar(select(1).select_from(t).limit(1))
    ]
    if not filled:
        return
    if not replace:
        raise SeedError(
            f"the database already holds loyalty data (in {', '.join(filled)}); "
            "pass --replace to clear it and seed again"
        )
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"TRUNCATE {', '.join(t.name for t in schema.REFERENCE_TABLES)}")
    else:
        for table in reversed(schema.REFERENCE_TABLES):
            conn.execute(table.delete())


def _write_program(conn: Connection, now: datetime) -> None:
    """The small tables: rewards, tiers, settings, audiences."""
    columns = [c.name for c in schema.rewards.columns]
    conn.execute(schema.rewards.insert(), [dict(zip(columns, r, strict=True)) for r in REWARDS])
    conn.execute(
        schema.tiers.insert(),
        [
            {"tier_id": i, "name": name, "position": i, "lower_bound": low, "upper_bound": high}
            for i, (name, low, high) in enumerate(TIERS, start=1)
        ],
    )
    conn.execute(
        schema.program_settings.insert(),
        {
            "id": 1,
            "points_expiry_enabled": True,
            "expiry_period_days": 365,
            "expiry_notice_days": 30,
            "reward_reminder_enabled_at": months_before(now, 13),
        },
    )
    founded = months_before(now, 60)
    conn.execute(
        schema.audiences.insert(),
        [
            {"slug": slug, "name": name, "created_at": founded if slug != "spring_preview" else now}
            for slug, name in AUDIENCES.items()
        ],
    )


def _write_chunk(loader: BulkLoader, chunk: _Chunk) -> None:
    loader.load(schema.customers, chunk.customers)
    loader.load(schema.audience_members, chunk.members)
    loader.load(schema.points_ledger, chunk.ledger)


def seed_program(
    engine: Engine,
    customers: int,
    seed: int,
    now: datetime | None = None,
    replace: bool = False,
    on_progress: Callable[[int], None] | None = None,
    chunks_per_commit: int = COMMIT_EVERY,
) -> SeedReport:
    """Fill the reference tables with a generated program of ``customers`` customers.

    The schema must exist. A database that already holds loyalty data is refused unless
    ``replace`` is set. ``on_progress`` receives the number of customers written after
    each commit. ``chunks_per_commit`` sizes the transactions, never the data.
    """
    if customers < 1:
        raise SeedError(f"--customers must be at least 1, got {customers}")
    moment = now or default_now()
    if moment.tzinfo is None:
        raise SeedError("now must carry a timezone offset")
    started = time.perf_counter()
    members = entries = 0
    chunks = range(-(-customers // CHUNK))
    with engine.connect() as conn, bulk_loader(conn) as loader:
        with conn.begin():
            _ensure_empty(conn, replace)
            _write_program(conn, moment)
        for first in range(0, len(chunks), chunks_per_commit):
            batch = chunks[first : first + chunks_per_commit]
            with conn.begin():
                for index in batch:
                    chunk = _chunk(index, customers, seed, entries + 1, moment)
                    _write_chunk(loader, chunk)
                    members, entries = members + len(chunk.members), entries + len(chunk.ledger)
            if on_progress:
                on_progress(min((batch[-1] + 1) * CHUNK, customers))
    return SeedReport(customers, members, entries, time.perf_counter() - started)
