"""One derive run: read the program's tables and the snapshot and derive the events (no
writes), then hand them to ``snapshot.commit``; then relay them.

The first run only records the baseline (every customer's current state) and sends
nothing, unless ``send_current_state`` asks it to treat every customer's current state as
new.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, inspect, text
from sqlalchemy.exc import NoSuchTableError

from attentive_sync.domain.export_config import ExportConfig
from attentive_sync.domain.loyalty.rewards import UNSUPPORTED_REWARD_KINDS
from attentive_sync.engine.checks import ConfigurationError, check_against_source
from attentive_sync.engine.delivery.collaborators import SendMany, Wait
from attentive_sync.engine.derived import queries, snapshot
from attentive_sync.engine.derived.rules import (
    DERIVED_KEYS,
    Derived,
    Program,
    derive_row_events,
    derive_state_events,
)
from attentive_sync.engine.derived.snapshot import Found
from attentive_sync.engine.loyalty.relay import DeliverMany, EventsConfig, run_relay
from attentive_sync.engine.report import Report
from attentive_sync.engine.runtime import Runtime
from attentive_sync.store.db import normalise_url
from attentive_sync.store.types import as_of

# What derived events read beyond the rest of the engine (revision 0004).
REQUIRED_COLUMNS = {
    "points_ledger": ("reward_id", "voucher_code", "rule_name"),
    "program_settings": ("derived_events_enabled", "approaching_tier_points"),
    "referrals": (
        "referral_id",
        "referrer_id",
        "referred_customer_id",
        "referred_name",
        "points_awarded",
        "completed_at",
    ),
}


def _database(url: str) -> str:
    """Which database a URL names: a SQLite file by its resolved path, others by URL."""
    parsed = normalise_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        return str(Path(parsed.database).resolve())
    return parsed.render_as_string(hide_password=False)


def check_source(runtime: Runtime) -> None:
    """The program's tables (or views) are in the state store's database, since the diff
    joins them with the engine's snapshot, and have what derived events read."""
    if _database(runtime.sync.loyalty_url) != _database(runtime.sync.db_url):
        raise ConfigurationError(
            "derived loyalty events need the loyalty tables (or views) in the state store's "
            "database: ATTENTIVE_SYNC_SOURCE_URL names another database"
        )
    inspector = inspect(runtime.source)
    for table, needed in REQUIRED_COLUMNS.items():
        try:
            found = {c["name"] for c in inspector.get_columns(table)}
        except NoSuchTableError:
            found = set()
        missing = [name for name in needed if name not in found]
        if missing:
            raise ConfigurationError(
                f"derived loyalty events read {table}.{', '.join(missing)}, which the loyalty "
                "source lacks: run `attentive-sync db init`, or add them to your view "
                "(see SCHEMA.md)"
            )


def _offerable_rewards(conn: Connection) -> list[dict[str, Any]]:
    """Rewards that can be offered (the notices' rule), cheapest first, as listed in events."""
    rows = conn.execute(
        text(
            "SELECT reward_id, title, kind, cost_points FROM rewards"
            " WHERE enabled = :yes AND in_stock = :yes AND actionable = :yes"
            " AND cost_points IS NOT NULL ORDER BY cost_points, reward_id"
        ),
        {"yes": True},
    ).mappings()
    return [
        {
            "reward_id": int(r["reward_id"]),
            "title": str(r["title"]),
            "kind": str(r["kind"]),
            "cost_points": int(r["cost_points"]),
        }
        for r in rows
        if r["kind"] not in UNSUPPORTED_REWARD_KINDS
    ]


def _snapshot_row(change: Mapping[str, Any], derived: Derived) -> dict[str, Any]:
    cid = int(change["customer_id"])
    return {
        "customer_id": cid,
        "tier": change["tier"],
        "insights_segment": change["insights_segment"],
        "points_balance": int(change["points_balance"]),
        "reward_available_at": derived.reward_available_at.get(cid, change["reward_available_at"]),
        "approaching_tier_at": derived.approaching_tier_at.get(cid, change["approaching_tier_at"]),
    }


def derive(
    runtime: Runtime,
    cfg: EventsConfig,
    owner: str,
    *,
    now: datetime | None = None,
    send_current_state: bool = False,
) -> Report:
    """Diff, enqueue (leased by ``owner``, who relays them) and move the snapshot."""
    now = as_of(now)
    check_source(runtime)
    report = Report("Derived loyalty events")
    report.must_add_up("derived", "queued", "queued_before")
    with runtime.source.connect() as conn:
        settings = queries.load_settings(conn)
        if not settings.enabled:
            report.notes.append("derived events are off (program_settings.derived_events_enabled)")
            return report
        progress = queries.load_progress(conn)
        upto = queries.max_ledger_entry(conn)
    if progress is None and not send_current_state:
        try:
            report.add("baseline_customers", snapshot.record_baseline(runtime, upto, now))
        except snapshot.SnapshotMoved:
            report.notes.append("another run recorded the baseline first")
            return report
        report.notes.append("first run: recorded the baseline, sent nothing")
        return report
    found = _derive(runtime, cfg, progress, upto, now)
    try:
        queued = snapshot.commit(runtime, progress, upto, found, owner, now)
    except snapshot.SnapshotMoved:
        report.notes.append("another run moved the snapshot first; this run stored nothing")
        return report
    derived = found.derived
    report.add("changed_customers", found.changed)
    for name, value in sorted(derived.counts.items()):
        report.add(name if name in _PLAIN_COUNTS else f"derived_{name}", value)
    report.add("derived", len(derived.events))
    report.add("queued", queued.stored)
    report.add("queued_before", queued.duplicates)
    return report


_PLAIN_COUNTS = frozenset({"cooldown_suppressed"})


def _derive(
    runtime: Runtime,
    cfg: EventsConfig,
    progress: queries.Progress | None,
    upto: int,
    now: datetime,
) -> Found:
    """The events, the snapshot rows to write, the referrals now seen (nothing written)."""
    derived = Derived()
    with runtime.source.connect() as conn:
        settings = queries.load_settings(conn)
        program = Program(
            queries.load_tiers(conn),
            _offerable_rewards(conn),
            settings.approaching_tier_points,
            cfg.selection,
        )
        referrals = queries.new_referrals(conn)
        if progress is not None:  # a first run sends the current state, never the history
            ledger = queries.new_ledger_rows(conn, progress.ledger_entry_id, upto)
            derive_row_events(ledger, referrals, cfg.selection, derived)
        generation = (progress.generation if progress else 0) + 1
        rows, changed = [], 0
        for change in queries.changed_customers(conn, everyone=progress is None):
            changed += 1
            derive_state_events(change, program, generation, now, derived)
            if progress is not None:
                rows.append(_snapshot_row(change, derived))
        gone = queries.gone_customers(conn) if progress is not None else []
    referral_ids = [int(r["referral_id"]) for r in referrals]
    return Found(derived, changed, rows, referral_ids, gone)


def run_loyalty_changes(
    runtime: Runtime,
    export: ExportConfig,
    cfg: EventsConfig,
    owner: str,
    collaborators: tuple[DeliverMany, SendMany, Wait],
    *,
    send_current_state: bool = False,
    now: datetime | None = None,
) -> Report:
    """Derive, then relay the derived events through the one loyalty event path."""
    check_against_source(runtime, export)
    report = derive(runtime, cfg, owner, now=now, send_current_state=send_current_state)
    topics = [key.value for key in DERIVED_KEYS]
    report.merge(run_relay(runtime, export, cfg, owner, collaborators, topics=topics))
    return report
