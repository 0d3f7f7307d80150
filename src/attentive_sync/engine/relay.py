"""The loyalty event relay: queued events to Attentive custom events, plus profile attributes.

Custom events have no bulk endpoint and no job id: each is one request, paced by the
client's shared rate limiter and sent with bounded concurrency. ``externalEventId`` is the
source event id, so a retried send is the same event to Attentive. Beside the events, each
affected customer's loyalty profile (tier, points balance, insights segment) is written as
custom attributes through the bulk path, like every other flow.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field

from attentive_sync.attentive import RequestRejected, RetryableError
from attentive_sync.domain.attributes import build_attributes
from attentive_sync.domain.errors import REJECTED_BY_ATTENTIVE, RecordRejected
from attentive_sync.domain.events import CustomEvent
from attentive_sync.domain.export_config import ExportConfig
from attentive_sync.domain.identifiers import Identifiers, build_identifiers
from attentive_sync.domain.loyalty_attributes import profile_attributes
from attentive_sync.domain.loyalty_selection import EventSelection, StalePolicy
from attentive_sync.domain.users import BulkUser
from attentive_sync.engine import events as mapping
from attentive_sync.engine.checks import check_against_source
from attentive_sync.engine.report import Report
from attentive_sync.engine.runs import SendMany, Wait, add_sends, add_wait, unsettled
from attentive_sync.engine.runtime import Runtime
from attentive_sync.engine.send import Batch, make_batch
from attentive_sync.sources.loyalty import check_readable, load_customers, points_balances
from attentive_sync.store.jobs import JobItem
from attentive_sync.store.queue import MAX_LEASE
from attentive_sync.store.records import QueuedEvent
from attentive_sync.store.types import utcnow

KIND = "loyalty_profile"
PROFILE_SOURCE = "profile"


class EventsConfig(BaseModel):
    """What the merchant sends: All or Some events, and what to do with stale ones."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    program: str = Field("Loyalty", description="Prefix of event type and attribute names.")
    selection: EventSelection = Field(default_factory=EventSelection)
    stale_policy: StalePolicy = Field(StalePolicy.SEND, description="send (default) or skip")
    update_profiles: bool = Field(True, description="Keep tier/points/segment attributes current.")
    concurrency: int = Field(16, ge=1, le=64, description="Event requests in flight at once.")
    max_events_per_run: int = Field(50_000, ge=1)

    def mapping_settings(self) -> mapping.EventSettings:
        return mapping.EventSettings(
            program=self.program, selection=self.selection, stale_policy=self.stale_policy
        )


@dataclass
class Delivery:
    """What happened to a chunk of sends, by queue seq."""

    accepted: list[int] = field(default_factory=list)
    rejected: list[tuple[int, str]] = field(default_factory=list)
    retry: list[tuple[int, str]] = field(default_factory=list)


@dataclass
class RelayPlan:
    rows: list[QueuedEvent]
    sends: list[tuple[int, CustomEvent]] = field(default_factory=list)
    labels: dict[int, str] = field(default_factory=dict)
    quarantined: list[tuple[int, str, str]] = field(default_factory=list)
    stale_sent: int = 0


def identifiers_for(config: ExportConfig, row: dict) -> Identifiers:
    check_readable(row, [*config.identifier_mappings, *config.extra_identifiers])
    return build_identifiers(
        {target: row.get(f) for f, target in config.identifier_mappings.items()},
        region=config.default_region,
        custom={f: row.get(f) for f in config.extra_identifiers},
    )


def plan_relay(
    runtime: Runtime,
    export: ExportConfig,
    cfg: EventsConfig,
    owner: str,
    now: datetime,
    topics: Sequence[str] = (),
) -> RelayPlan:
    limit = min(MAX_LEASE, cfg.max_events_per_run)
    lease_seconds = runtime.sync.lease_seconds
    rows = runtime.store.events.lease(limit, lease_seconds, owner, topics=topics)
    plan = RelayPlan(rows)
    customers = {
        c["customer_id"]: c for c in load_customers(runtime.source, {r.customer_id for r in rows})
    }
    settings = cfg.mapping_settings()
    for row in rows:
        try:
            ids = (
                identifiers_for(export, customers[row.customer_id])
                if row.customer_id in customers
                else None
            )
        except RecordRejected as exc:
            plan.quarantined.append((row.seq, exc.code, exc.detail))
            plan.labels[row.seq] = "quarantined"
            continue
        queued = mapping.QueuedEvent(
            row.event_id, row.topic, row.customer_id, row.occurred_at, row.payload
        )
        outcome = mapping.map_event(queued, ids, settings, now)
        if isinstance(outcome, mapping.Send):
            plan.sends.append((row.seq, outcome.event))
            plan.stale_sent += outcome.stale
        elif isinstance(outcome, mapping.Rejected):
            plan.quarantined.append((row.seq, outcome.code, outcome.detail))
            plan.labels[row.seq] = "quarantined"
        else:
            plan.labels[row.seq] = outcome.label
    return plan


def deliver(runtime: Runtime, sends: Sequence[tuple[int, CustomEvent]], workers: int) -> Delivery:
    """Send events concurrently across customers, one after another within a customer.

    Errors are sorted by what happens next; StopRun propagates. After a retryable failure a
    customer's later events wait for the retry too, so they never overtake it.
    """
    result = Delivery()
    by_customer: dict[str, list[tuple[int, CustomEvent]]] = {}
    for seq, event in sends:
        key = json.dumps(event.user.to_wire(), sort_keys=True)
        by_customer.setdefault(key, []).append((seq, event))

    def in_order(pairs: list[tuple[int, CustomEvent]]) -> None:
        for n, (seq, event) in enumerate(pairs):
            try:
                runtime.client.send_custom_event(event.to_wire())
            except RequestRejected as exc:
                result.rejected.append((seq, str(exc)))
            except RetryableError as exc:
                result.retry.extend((later, str(exc)) for later, _ in pairs[n:])
                return
            else:
                result.accepted.append(seq)

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="events") as pool:
        list(pool.map(in_order, by_customer.values()))
    return result


def apply_delivery(runtime: Runtime, delivery: Delivery, now: datetime) -> None:
    queue = runtime.store.events
    queue.ack(delivery.accepted)
    for seq, message in delivery.rejected:
        queue.quarantine([seq], REJECTED_BY_ATTENTIVE, message)
    for seq, message in delivery.retry:
        queue.nack([seq], message, now + timedelta(seconds=60))


def profile_batches(
    runtime: Runtime, export: ExportConfig, cfg: EventsConfig, customer_ids: set[int]
) -> list[Batch]:
    """Current tier, points balance and segment for each customer, as bulk records."""
    rows = load_customers(runtime.source, customer_ids)
    balances = points_balances(runtime.source, customer_ids)
    pairs = []
    for row in rows:
        try:
            ids = identifiers_for(export, row)
        except RecordRejected:
            continue  # the customer's events were quarantined for the same reason
        cid = row["customer_id"]
        attrs = profile_attributes(
            row.get("tier"), balances.get(cid), row.get("insights_segment"), program=cfg.program
        )
        if not attrs:
            continue
        user = BulkUser(customer_id=cid, identifiers=ids, attributes=build_attributes(custom=attrs))
        pairs.append((user, JobItem(cid, PROFILE_SOURCE, f"profile:{cid}", attrs)))
    return [make_batch(pairs[i : i + 256]) for i in range(0, len(pairs), 256)]


DeliverMany = Callable[[list[list[tuple[int, CustomEvent]]]], list[Delivery]]


def thread_deliverer(runtime: Runtime, workers: int) -> DeliverMany:
    return lambda chunks: [deliver(runtime, chunk, workers) for chunk in chunks]


def run_relay(
    runtime: Runtime,
    export: ExportConfig,
    cfg: EventsConfig,
    owner: str,
    collaborators: tuple[DeliverMany, SendMany, Wait],
    topics: Sequence[str] = (),
) -> Report:
    """Lease, map and send queued loyalty events (only ``topics``, when given) until the
    queue is drained, then bring the affected customers' profile attributes up to date."""
    check_against_source(runtime, export)
    deliver_many, send_many, wait = collaborators
    report = Report("Loyalty events")
    report.must_add_up(
        "leased",
        "accepted_events",
        "rejected_events",
        "retry_later",
        "not_selected",
        "stale_skipped",
        "dropped",
        "quarantined",
    )
    customers: set[int] = set()
    while report.counts["leased"] < cfg.max_events_per_run:
        sent = _relay_round(runtime, export, cfg, owner, deliver_many, topics, report)
        if sent is None:
            break
        customers |= sent
    stale = report.counts["stale_sent"] + report.counts["stale_skipped"]
    if stale:
        report.notes.append(
            f"{stale} event(s) were older than 12 hours: Attentive accepts them but they "
            "trigger no journey"
        )
    if cfg.update_profiles:
        _update_profiles(runtime, export, cfg, customers, send_many, wait, report)
    return report


def _relay_round(
    runtime: Runtime,
    export: ExportConfig,
    cfg: EventsConfig,
    owner: str,
    deliver_many: DeliverMany,
    topics: Sequence[str],
    report: Report,
) -> set[int] | None:
    """One lease's worth; returns the customers whose events were sent (None: queue empty)."""
    now = utcnow()
    plan = plan_relay(runtime, export, cfg, owner, now, topics)
    if not plan.rows:
        return None
    report.add("leased", len(plan.rows))
    report.add("stale_sent", plan.stale_sent)
    for label in plan.labels.values():
        report.add(label)
    for seq, code, detail in plan.quarantined:
        runtime.store.events.quarantine([seq], code, detail)
    runtime.store.events.ack([r.seq for r in plan.rows if plan.labels.get(r.seq) in _FINISHED])
    for delivery in deliver_many(chunked(plan.sends, 500)):
        apply_delivery(runtime, delivery, now)
        report.add("accepted_events", len(delivery.accepted))
        report.add("rejected_events", len(delivery.rejected))
        report.add("retry_later", len(delivery.retry))
    sent = {seq for seq, _ in plan.sends}
    return {r.customer_id for r in plan.rows if r.seq in sent}


def _update_profiles(
    runtime: Runtime,
    export: ExportConfig,
    cfg: EventsConfig,
    customers: set[int],
    send_many: SendMany,
    wait: Wait,
    report: Report,
) -> None:
    """Write the profiles through the bulk path, and settle earlier runs' profile jobs."""
    report.add("profiles", len(customers))
    batches = profile_batches(runtime, export, cfg, customers) if customers else []
    job_ids = add_sends(report, send_many(batches, KIND))
    add_wait(report, wait(unsettled(runtime, KIND) + job_ids))


_FINISHED = frozenset({"not_selected", "stale_skipped", "dropped"})


def chunked(items: list, size: int) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), size)]
