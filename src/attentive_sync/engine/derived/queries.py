"""The SQL of derived events: settings, the set-based diff, and the rows added since.

Everything here reads the reference tables (or the brand's views) and the engine's snapshot
tables in one database: the diff is a join between them, so the database compares a million
customers and Python receives only the ones that changed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Connection, text

from attentive_sync.engine.checks import ConfigurationError

# What the current state of every customer is, computed in the database. Joining the ledger
# per customer (through its customer_id index) is the fast form on SQLite (see the notices).
_CURRENT = (
    "SELECT c.customer_id, c.tier, c.insights_segment,"
    " COALESCE(SUM(l.points), 0) AS points_balance"
    " FROM customers c"
    " LEFT JOIN points_ledger l ON l.customer_id = c.customer_id AND l.status = 'approved'"
    " GROUP BY c.customer_id, c.tier, c.insights_segment"
)

CHANGE_COLUMNS = (
    "customer_id",
    "tier",
    "insights_segment",
    "points_balance",
    "known",
    "old_tier",
    "old_segment",
    "old_balance",
    "reward_available_at",
    "approaching_tier_at",
)


@dataclass(frozen=True)
class DerivedSettings:
    """The derived-events part of ``program_settings``."""

    enabled: bool
    approaching_tier_points: int | None


@dataclass(frozen=True)
class Tier:
    name: str
    position: int
    lower_bound: int
    upper_bound: int | None


@dataclass(frozen=True)
class Progress:
    """``derived_progress`` row 1: absent until the first run records the baseline."""

    generation: int
    ledger_entry_id: int


class SettingsMissing(ConfigurationError):
    """``program_settings`` has no row 1."""


def load_settings(conn: Connection) -> DerivedSettings:
    row = conn.execute(
        text(
            "SELECT derived_events_enabled, approaching_tier_points"
            " FROM program_settings WHERE id = 1"
        )
    ).first()
    if row is None:
        raise SettingsMissing("program_settings has no row with id = 1")
    threshold = None if row[1] is None else int(row[1])
    return DerivedSettings(bool(row[0]), threshold)


def load_tiers(conn: Connection) -> dict[str, Tier]:
    rows = conn.execute(text("SELECT name, position, lower_bound, upper_bound FROM tiers"))
    return {
        str(name): Tier(str(name), int(pos), int(low), None if high is None else int(high))
        for name, pos, low, high in rows
    }


def load_progress(conn: Connection) -> Progress | None:
    row = conn.execute(
        text("SELECT generation, ledger_entry_id FROM derived_progress WHERE id = 1")
    ).first()
    return None if row is None else Progress(int(row[0]), int(row[1]))


def max_ledger_entry(conn: Connection) -> int:
    found = conn.execute(text("SELECT MAX(entry_id) FROM points_ledger")).scalar()
    return 0 if found is None else int(found)


def _differs(conn: Connection, left: str, right: str) -> str:
    """NULL-safe inequality (SQLite's ``IS NOT`` is PostgreSQL's ``IS DISTINCT FROM``)."""
    if conn.dialect.name == "postgresql":
        return f"{left} IS DISTINCT FROM {right}"
    return f"{left} IS NOT {right}"


def changed_customers(conn: Connection, everyone: bool = False) -> Iterator[dict[str, Any]]:
    """Customers whose tier, segment or balance differs from the snapshot, or who are new to
    it, with the snapshot's values beside the current ones (``everyone``: compare every
    customer with an empty snapshot, for sending the current state on a first run)."""
    if everyone:
        statement = (
            "SELECT now.customer_id, now.tier, now.insights_segment, now.points_balance,"
            " 0 AS known, NULL AS old_tier, NULL AS old_segment, 0 AS old_balance,"
            " NULL AS reward_available_at, NULL AS approaching_tier_at"
            f" FROM ({_CURRENT}) now"
        )
    else:
        statement = (
            "SELECT now.customer_id, now.tier, now.insights_segment, now.points_balance,"
            " CASE WHEN s.customer_id IS NULL THEN 0 ELSE 1 END AS known,"
            " s.tier AS old_tier, s.insights_segment AS old_segment,"
            " COALESCE(s.points_balance, 0) AS old_balance,"
            " s.reward_available_at, s.approaching_tier_at"
            f" FROM ({_CURRENT}) now"
            " LEFT JOIN derived_state s ON s.customer_id = now.customer_id"
            " WHERE s.customer_id IS NULL"
            f" OR {_differs(conn, 's.tier', 'now.tier')}"
            f" OR {_differs(conn, 's.insights_segment', 'now.insights_segment')}"
            " OR s.points_balance <> now.points_balance"
        )
    result = conn.execution_options(stream_results=True).execute(text(statement))
    for row in result:
        change = dict(zip(CHANGE_COLUMNS, row, strict=True))
        change["known"] = bool(change["known"])
        for name in ("reward_available_at", "approaching_tier_at"):
            change[name] = utc_or_none(change[name])
        yield change


def record_baseline_sql() -> str:
    """The snapshot of every customer, written by the database itself (a first run)."""
    return (
        "INSERT INTO derived_state (customer_id, tier, insights_segment, points_balance)"
        f" SELECT customer_id, tier, insights_segment, points_balance FROM ({_CURRENT}) now"
    )


def gone_customers(conn: Connection) -> list[int]:
    """Customers in the snapshot who are no longer in the program (read, not deleted, here:
    the writing transaction deletes them by id, so it stays short)."""
    rows = conn.execute(
        text(
            "SELECT s.customer_id FROM derived_state s WHERE NOT EXISTS"
            " (SELECT 1 FROM customers c WHERE c.customer_id = s.customer_id)"
        )
    )
    return [int(row[0]) for row in rows]


SEE_ALL_REFERRALS_SQL = (
    "INSERT INTO derived_referrals_seen (referral_id, seen_at)"
    " SELECT referral_id, :now FROM referrals WHERE completed_at IS NOT NULL"
)


def new_ledger_rows(conn: Connection, after: int, upto: int) -> list[dict[str, Any]]:
    """Ledger rows in ``(after, upto]`` that are events: an activity rule's earn, a reward's
    spend (void rows never happened). The reward's title and kind come from ``rewards``."""
    rows = conn.execute(
        text(
            "SELECT l.entry_id, l.customer_id, l.points, l.kind, l.created_at,"
            " l.rule_name, l.reward_id, l.voucher_code, r.title, r.kind AS reward_kind"
            " FROM points_ledger l LEFT JOIN rewards r ON r.reward_id = l.reward_id"
            " WHERE l.entry_id > :after AND l.entry_id <= :upto AND l.status <> 'void'"
            " AND ((l.kind = 'earned' AND l.rule_name IS NOT NULL)"
            "  OR (l.kind = 'spent' AND l.reward_id IS NOT NULL))"
            " ORDER BY l.entry_id"
        ),
        {"after": after, "upto": upto},
    ).mappings()
    return [{**row, "created_at": utc_or_none(row["created_at"])} for row in rows]


def new_referrals(conn: Connection) -> list[dict[str, Any]]:
    """Completed referrals not yet turned into events, with the referred friend's name."""
    rows = conn.execute(
        text(
            "SELECT r.referral_id, r.referrer_id, r.points_awarded, r.completed_at,"
            " COALESCE(r.referred_name, f.first_name) AS referred_name"
            " FROM referrals r LEFT JOIN customers f ON f.customer_id = r.referred_customer_id"
            " WHERE r.completed_at IS NOT NULL AND NOT EXISTS"
            " (SELECT 1 FROM derived_referrals_seen s WHERE s.referral_id = r.referral_id)"
            " ORDER BY r.referral_id"
        )
    ).mappings()
    return [{**row, "completed_at": utc_or_none(row["completed_at"])} for row in rows]


def utc_or_none(value: datetime | str | None) -> datetime | None:
    """SQLite hands timestamps back as naive UTC text; PostgreSQL as aware datetimes."""
    if value is None:
        return None
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment
