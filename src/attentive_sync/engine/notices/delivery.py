"""Delivering the computed notices: enqueue as a custom event, claim, write the attributes.

Each notice is enqueued in the loyalty event queue under a deterministic event id (a
re-run stores nothing new), then claimed in ``notices_sent``, which the computations read
to skip customers already notified. Enqueuing first means a crash between the two steps
loses nothing: the next run enqueues the same id again (ignored) and claims it. The
notice's own events are then relayed like any loyalty event (selection, stale policy,
quarantine, retries); the figures also go to Attentive as custom attributes through the
shared bulk path, so segments can use them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

import pandas as pd

from attentive_sync.domain.export_config import ExportConfig
from attentive_sync.domain.loyalty.attributes import attribute_prefix
from attentive_sync.domain.loyalty.catalogue import EventKey
from attentive_sync.engine.delivery.collaborators import (
    SendMany,
    Wait,
    leases_released_on_failure,
)
from attentive_sync.engine.delivery.writes import run_writes
from attentive_sync.engine.loyalty.relay import DeliverMany, EventsConfig, run_relay
from attentive_sync.engine.notices import plan_expiry_notices, plan_reward_reminders
from attentive_sync.engine.report import Report
from attentive_sync.engine.runtime import Runtime
from attentive_sync.store.records import NewEvent, NewWrite
from attentive_sync.store.types import utcnow

Row = dict[str, Any]
Collaborators = tuple[DeliverMany, SendMany, Wait]


@dataclass(frozen=True)
class NoticeKind:
    """What differs between the two notices."""

    job_kind: Literal["reward_reminder", "expiry_notice"]
    topic: EventKey
    period_key: Callable[[Row], str]
    attributes: Callable[[Row, str], dict[str, Any]]


def _json_ready(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalars from the DataFrame
        return value.item()
    if isinstance(value, list):
        return [{k: _json_ready(v) for k, v in item.items()} for item in value]
    return value


def _expire_date(row: Row) -> str:
    return str(_json_ready(row["expire_points_at"]))[:10]


def _payload(row: Row) -> dict[str, Any]:
    payload = {k: _json_ready(v) for k, v in row.items() if k != "customer_id"}
    if "expire_points_at" in payload:  # a UTC day: points expire at its first instant
        payload["expire_points_at"] = f"{_expire_date(row)}T00:00:00Z"
    return payload


REMINDER = NoticeKind(
    job_kind="reward_reminder",
    topic=EventKey.REWARD_REMINDER,
    period_key=lambda row: str(row["points_interval_start_date"]),
    attributes=lambda row, prefix: {
        f"{prefix}_points_approved_in_interval": int(row["points_approved_in_interval"]),
        f"{prefix}_points_interval_start_date": str(row["points_interval_start_date"]),
        f"{prefix}_available_rewards_count": int(row["available_rewards_count"]),
    },
)
EXPIRY = NoticeKind(
    job_kind="expiry_notice",
    topic=EventKey.POINTS_EXPIRING,
    period_key=_expire_date,
    attributes=lambda row, prefix: {
        f"{prefix}_points_to_expire": int(row["points_to_expire"]),
        f"{prefix}_points_expire_at": _expire_date(row),
    },
)


def _enqueue_and_claim(
    runtime: Runtime, kind: NoticeKind, rows: list[Row], owner: str
) -> list[Row]:
    """Enqueue every notice's event, then claim it; returns the rows claimed by this run.

    The events are queued leased by this run, which relays them itself (so its report
    counts them); if it dies, the lease runs out and the loyalty-events relay sends them.
    """
    now, topic = utcnow(), kind.topic.value
    ids = [f"{topic}:{kind.period_key(row)}:{int(row['customer_id'])}" for row in rows]
    runtime.store.events.enqueue(
        [
            NewEvent(event_id, topic, int(row["customer_id"]), now, _payload(row))
            for event_id, row in zip(ids, rows, strict=True)
        ],
        now=now,
        lease=(owner, runtime.sync.lease_seconds),
    )
    return [
        row
        for event_id, row in zip(ids, rows, strict=True)
        if runtime.store.notices.claim(
            topic, int(row["customer_id"]), kind.period_key(row), event_id, now=now
        )
    ]


def _enqueue_attributes(
    runtime: Runtime, events: EventsConfig, kind: NoticeKind, rows: list[Row]
) -> int:
    """Queue each claimed notice's figures as an attribute write (same key on a re-run)."""
    now, prefix = utcnow(), attribute_prefix(events.program)
    writes = [
        NewWrite(
            f"{kind.job_kind}:{kind.period_key(row)}:{int(row['customer_id'])}",
            kind.job_kind,
            int(row["customer_id"]),
            kind.attributes(row, prefix),
            now,
        )
        for row in rows
    ]
    return runtime.store.writes.enqueue(writes, now=now).stored


def _deliver(
    runtime: Runtime,
    report: Report,
    export: ExportConfig,
    events: EventsConfig,
    kind: NoticeKind,
    notices: pd.DataFrame,
    collaborators: Collaborators,
    owner: str,
) -> Report:
    _, send_many, wait = collaborators
    claimed = _enqueue_and_claim(runtime, kind, notices.to_dict("records"), owner)
    report.add("claimed", len(claimed))
    report.add("claimed_before", len(notices) - len(claimed))
    report.add("attribute_writes_queued", _enqueue_attributes(runtime, events, kind, claimed))
    with leases_released_on_failure(runtime, owner):
        run_writes(
            runtime, export, owner, [kind.job_kind], kind.job_kind, (send_many, wait), report
        )
    relay = run_relay(
        runtime,
        export,
        events.model_copy(update={"update_profiles": False}),
        owner,
        collaborators,
        topics=[kind.topic.value],
    )
    report.merge(relay)
    return report


def run_reward_reminder(
    runtime: Runtime,
    export: ExportConfig,
    events: EventsConfig,
    as_of: datetime,
    collaborators: Collaborators,
    owner: str,
) -> Report:
    """Reminders for the reminder interval last completed at ``as_of``."""
    with runtime.source.connect() as conn, runtime.store.engine.connect() as state:
        result = plan_reward_reminders(conn, as_of, state)
    report = Report("Reward reminder")
    for name in ("considered", "eligible", "already_notified", "to_send"):
        report.add(name, getattr(result.counts, name))
    report.must_add_up("eligible", "already_notified", "to_send")
    report.must_add_up("to_send", "claimed", "claimed_before")
    if result.skipped_reason or result.interval is None:
        report.notes.append(result.skipped_reason or "no interval has ended yet")
        return report
    start, end = result.interval.start, result.interval.end
    report.notes.append(f"interval {start:%Y-%m-%d} to {end:%Y-%m-%d}")
    return _deliver(runtime, report, export, events, REMINDER, result.notices, collaborators, owner)


def run_expiry_notice(
    runtime: Runtime,
    export: ExportConfig,
    events: EventsConfig,
    as_of: date,
    collaborators: Collaborators,
    owner: str,
) -> Report:
    """Points-expiring-soon notices due on ``as_of``."""
    with runtime.source.connect() as conn, runtime.store.engine.connect() as state:
        result = plan_expiry_notices(conn, as_of, state)
    report = Report(f"Expiry notice {as_of.isoformat()}")
    for name in ("considered", "with_balance", "due", "already_noticed", "to_send"):
        report.add(name, getattr(result.counts, name))
    report.must_add_up("due", "already_noticed", "to_send")
    report.must_add_up("to_send", "claimed", "claimed_before")
    if result.skipped_reason:
        report.notes.append(result.skipped_reason)
        return report
    return _deliver(runtime, report, export, events, EXPIRY, result.notices, collaborators, owner)
