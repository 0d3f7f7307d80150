"""Delivering the computed notices: claim, enqueue as a custom event, write the attributes.

A notice is claimed in ``notices_sent`` first (its unique key is the lock), then enqueued
in the loyalty event queue under a deterministic event id, so a re-run or a second worker
sends nothing twice. The relay delivers it like any loyalty event (selection, stale policy,
quarantine and retries included); the figures also go to Attentive as custom attributes
through the shared bulk path, so segments can use them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date, datetime
from typing import Any

from attentive_sync.domain.attributes import build_attributes
from attentive_sync.domain.errors import RecordRejected
from attentive_sync.domain.export_config import ExportConfig
from attentive_sync.domain.loyalty_attributes import attribute_prefix
from attentive_sync.domain.users import BulkUser
from attentive_sync.engine.notices import plan_expiry_notices, plan_reward_reminders
from attentive_sync.engine.relay import DeliverMany, EventsConfig, identifiers_for, run_relay
from attentive_sync.engine.report import Report
from attentive_sync.engine.runs import SendMany, Wait, add_sends, add_wait
from attentive_sync.engine.runtime import Runtime
from attentive_sync.engine.send import Batch, make_batch
from attentive_sync.sources.loyalty import load_customers
from attentive_sync.store.jobs import JobItem
from attentive_sync.store.records import NewEvent
from attentive_sync.store.types import utcnow

Row = dict[str, Any]
Attributes = Callable[[Row], dict[str, Any]]


def _json_ready(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalars from the DataFrame
        return value.item()
    if isinstance(value, list):
        return [{k: _json_ready(v) for k, v in item.items()} for item in value]
    return value


def _claim_and_enqueue(
    runtime: Runtime, kind: str, rows: list[Row], period_key: Callable[[Row], str], now: datetime
) -> tuple[list[Row], int]:
    """Claim each notice and enqueue its event; return the newly claimed rows and dupes."""
    claimed, events = [], []
    topic = kind_topic(kind)
    for row in rows:
        cid, key = int(row["customer_id"]), period_key(row)
        event_id = f"{topic}:{key}:{cid}"
        # Notices are claimed under their event key, which the computations read back.
        if not runtime.store.notices.claim(topic, cid, key, event_id, now=now):
            continue
        payload = {k: _json_ready(v) for k, v in row.items() if k != "customer_id"}
        if "expire_points_at" in payload:  # a UTC day: points expire at its first instant
            payload["expire_points_at"] = f"{str(payload['expire_points_at'])[:10]}T00:00:00Z"
        events.append(NewEvent(event_id, topic, cid, now, payload))
        claimed.append(row)
    runtime.store.events.enqueue(events, now=now)
    return claimed, len(rows) - len(claimed)


def kind_topic(kind: str) -> str:
    return {"reward_reminder": "reward_reminder", "expiry_notice": "points_expiring"}[kind]


def _attribute_batches(
    runtime: Runtime,
    export: ExportConfig,
    kind: str,
    rows: list[Row],
    attributes: Attributes,
    period_key: Callable[[Row], str],
) -> list[Batch]:
    customers = {c["customer_id"]: c for c in load_customers(runtime.source, _ids(rows))}
    pairs = []
    for row in rows:
        cid = int(row["customer_id"])
        try:
            ids = identifiers_for(export, customers[cid])
        except (KeyError, RecordRejected):
            continue  # the event for this notice is quarantined with the reason
        attrs = attributes(row)
        user = BulkUser(customer_id=cid, identifiers=ids, attributes=build_attributes(custom=attrs))
        pairs.append((user, JobItem(cid, "notice", f"{kind}:{period_key(row)}:{cid}", attrs)))
    return [make_batch(pairs[i : i + 256]) for i in range(0, len(pairs), 256)]


def _ids(rows: Iterable[Row]) -> set[int]:
    return {int(r["customer_id"]) for r in rows}


def _deliver(
    runtime: Runtime,
    report: Report,
    export: ExportConfig,
    events: EventsConfig,
    kind: str,
    rows: list[Row],
    period_key: Callable[[Row], str],
    attributes: Attributes,
    collaborators: tuple[DeliverMany, SendMany, Wait],
    owner: str,
) -> Report:
    deliver_many, send_many, wait = collaborators
    claimed, duplicates = _claim_and_enqueue(runtime, kind, rows, period_key, utcnow())
    report.add("claimed", len(claimed))
    report.add("claimed_before", duplicates)
    if claimed:
        batches = _attribute_batches(runtime, export, kind, claimed, attributes, period_key)
        add_wait(report, wait(add_sends(report, send_many(batches, kind))))
    relay = run_relay(
        runtime,
        export,
        events.model_copy(update={"update_profiles": False}),
        owner,
        deliver_many,
        send_many,
        wait,
    )
    report.merge(relay)
    report.identities.extend(relay.identities)
    return report


def run_reward_reminder(
    runtime: Runtime,
    export: ExportConfig,
    events: EventsConfig,
    as_of: datetime,
    collaborators: tuple[DeliverMany, SendMany, Wait],
    owner: str,
) -> Report:
    """Reminders for the reminder interval last completed at ``as_of``."""
    with runtime.source.connect() as conn:
        result = plan_reward_reminders(conn, as_of)
    report = Report("Reward reminder")
    counts = result.counts
    for name in ("considered", "eligible", "already_notified", "to_send"):
        report.add(name, getattr(counts, name))
    report.must_add_up("eligible", "already_notified", "to_send")
    report.must_add_up("to_send", "claimed", "claimed_before")
    if result.skipped_reason:
        report.notes.append(result.skipped_reason)
        return report
    report.notes.append(
        f"interval {result.interval.start:%Y-%m-%d} to {result.interval.end:%Y-%m-%d}"
    )
    prefix = attribute_prefix(events.program)

    def attributes(row: Row) -> dict[str, Any]:
        return {
            f"{prefix}_points_approved_in_interval": int(row["points_approved_in_interval"]),
            f"{prefix}_points_interval_start_date": str(row["points_interval_start_date"]),
            f"{prefix}_available_rewards_count": int(row["available_rewards_count"]),
        }

    rows = result.notices.to_dict("records")
    key = result.interval.period_key
    return _deliver(
        runtime,
        report,
        export,
        events,
        "reward_reminder",
        rows,
        lambda row: key,
        attributes,
        collaborators,
        owner,
    )


def run_expiry_notice(
    runtime: Runtime,
    export: ExportConfig,
    events: EventsConfig,
    as_of: date,
    collaborators: tuple[DeliverMany, SendMany, Wait],
    owner: str,
) -> Report:
    """Points-expiring-soon notices due on ``as_of``."""
    with runtime.source.connect() as conn:
        result = plan_expiry_notices(conn, as_of)
    report = Report(f"Expiry notice {as_of.isoformat()}")
    counts = result.counts
    for name in ("considered", "with_balance", "due", "already_noticed", "to_send"):
        report.add(name, getattr(counts, name))
    report.must_add_up("due", "already_noticed", "to_send")
    report.must_add_up("to_send", "claimed", "claimed_before")
    if result.skipped_reason:
        report.notes.append(result.skipped_reason)
        return report
    prefix = attribute_prefix(events.program)

    def expire_date(row: Row) -> str:
        return _json_ready(row["expire_points_at"])[:10]

    def attributes(row: Row) -> dict[str, Any]:
        return {
            f"{prefix}_points_to_expire": int(row["points_to_expire"]),
            f"{prefix}_points_expire_at": expire_date(row),
        }

    rows = result.notices.to_dict("records")
    return _deliver(
        runtime,
        report,
        export,
        events,
        "expiry_notice",
        rows,
        expire_date,
        attributes,
        collaborators,
        owner,
    )
