"""The loyalty event relay: queued events to Attentive custom events, plus profile attributes.

Custom events have no bulk endpoint and no job id: each is one request, paced by the
client's shared rate limiter and sent with bounded concurrency. ``externalEventId`` is the
source event id, so a retried send is the same event to Attentive. Beside the events, each
affected customer's loyalty profile (tier, points balance, insights segment) is written as
custom attributes through the bulk path, like every other flow.
"""

from __future__ import annotations

import contextvars
import json
import logging
from collections import deque
from collections.abc import Callable, Mapping, Sequence, Set
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from attentive_sync.attentive import RequestRejected, RetryableError
from attentive_sync.domain.errors import REJECTED_BY_ATTENTIVE, RecordRejected
from attentive_sync.domain.events import CustomEvent
from attentive_sync.domain.export_config import ExportConfig
from attentive_sync.domain.identifiers import Identifiers, build_identifiers
from attentive_sync.domain.loyalty.attributes import profile_attributes
from attentive_sync.domain.loyalty.catalogue import RECIPIENT_KEY, UNMATCHED_BASE, EventKey
from attentive_sync.engine.checks import check_against_source
from attentive_sync.engine.delivery.collaborators import (
    SendMany,
    Wait,
    leases_released_on_failure,
)
from attentive_sync.engine.delivery.kinds import retry_rows
from attentive_sync.engine.delivery.retry import RetryPolicy
from attentive_sync.engine.delivery.writes import run_writes
from attentive_sync.engine.gctuning import tuned_gc
from attentive_sync.engine.loyalty import events
from attentive_sync.engine.loyalty.events import EventsConfig
from attentive_sync.engine.mapping import identifiers_for
from attentive_sync.engine.report import Report
from attentive_sync.engine.runtime import Runtime
from attentive_sync.masking import mask_text
from attentive_sync.sources.loyalty import load_customers, points_balances
from attentive_sync.store.queue import MAX_LEASE
from attentive_sync.store.records import NewWrite, QueuedEvent
from attentive_sync.store.tables import WRITE_KINDS
from attentive_sync.store.types import utcnow

KIND = "loyalty_profile"
log = logging.getLogger("attentive_sync.engine")


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
    dropped_emails: int = 0


def _identifiers(
    export: ExportConfig, row: QueuedEvent, customers: Mapping[int, Mapping[str, Any]]
) -> Identifiers | None:
    """Who the event goes to: the program customer's identifiers, or, for a platform's
    customer with no program row, the identifiers the event carries (None: neither)."""
    if row.customer_id >= UNMATCHED_BASE:
        carried = row.payload.get(RECIPIENT_KEY) or {}
        return build_identifiers(dict(carried), region=export.default_region) if carried else None
    found = customers.get(row.customer_id)
    return identifiers_for(export, found) if found is not None else None


def plan_relay(
    runtime: Runtime,
    export: ExportConfig,
    cfg: EventsConfig,
    owner: str,
    now: datetime,
    topics: Sequence[str] = (),
    *,
    skip: Set[int] = frozenset(),
    limit: int = MAX_LEASE,
) -> RelayPlan:
    """Lease and map up to ``limit`` next events; rows this run has out now (``skip``:
    sent or queued to be sent, not yet applied) are not planned again, even when a lease
    that ran out hands one back to it."""
    limit = min(limit, MAX_LEASE, cfg.max_events_per_run)
    lease_seconds = runtime.sync.lease_seconds
    only = {"topic": topics} if topics else None
    queue = runtime.store.events
    # What this run already holds first (events it queued itself), then the queue's next.
    rows = queue.get([seq for seq in queue.leased_by(owner) if seq not in skip])
    if len(rows) < limit:
        taken = queue.lease(limit - len(rows), lease_seconds, owner, only=only)
        rows += [row for row in taken if row.seq not in skip]
    plan = RelayPlan(rows)
    customers = {
        c["customer_id"]: c for c in load_customers(runtime.source, {r.customer_id for r in rows})
    }
    for row in rows:
        try:
            ids = _identifiers(export, row, customers)
        except RecordRejected as exc:
            plan.quarantined.append((row.seq, exc.code, exc.detail))
            plan.labels[row.seq] = "quarantined"
            continue
        outcome = events.map_event(row, ids, cfg, now)
        if isinstance(outcome, events.Send):
            plan.sends.append((row.seq, outcome.event))
            plan.stale_sent += outcome.stale
            plan.dropped_emails += int(ids is not None and "email" in ids.dropped)
        elif isinstance(outcome, events.Rejected):
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
    by_customer = by_recipient(sends)

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


def by_recipient(
    sends: Sequence[tuple[int, CustomEvent]],
) -> dict[str, list[tuple[int, CustomEvent]]]:
    """The sends grouped by who receives them (their identifiers), each group in order."""
    groups: dict[str, list[tuple[int, CustomEvent]]] = {}
    for seq, event in sends:
        key = json.dumps(event.user.to_wire(), sort_keys=True)
        groups.setdefault(key, []).append((seq, event))
    return groups


def recipient_chunks(
    sends: Sequence[tuple[int, CustomEvent]], size: int
) -> list[list[tuple[int, CustomEvent]]]:
    """The sends in chunks of about ``size`` that never split one recipient's events, so
    the chunks of one lease may go out side by side without a recipient's events
    overtaking each other (across leases, order is kept per customer: see the relay)."""
    chunks: list[list[tuple[int, CustomEvent]]] = []
    current: list[tuple[int, CustomEvent]] = []
    for group in by_recipient(sends).values():
        if current and len(current) + len(group) > size:
            chunks.append(current)
            current = []
        current.extend(group)
    if current:
        chunks.append(current)
    return chunks


def record_rewards_sent(
    runtime: Runtime, rows: Sequence[QueuedEvent], accepted: Sequence[int], now: datetime
) -> None:
    """Note each ``reward_available`` event Attentive accepted in ``notices_sent``: the
    monthly reminder skips only customers who received one (an event dropped, left out
    by the selection or skipped as stale never reached them). Noted before the row is
    done, so a crash in between re-sends the event (the same ``externalEventId``) rather
    than forgetting it was sent."""
    taken = set(accepted)
    sent = [
        (row.customer_id, str(row.seq), row.event_id)
        for row in rows
        if row.seq in taken and row.topic == EventKey.REWARD_AVAILABLE.value
    ]
    runtime.store.notices.record_sent(EventKey.REWARD_AVAILABLE.value, sent, now=now)


def apply_delivery(runtime: Runtime, delivery: Delivery, owner: str, now: datetime) -> int:
    """Apply what happened to the sends; returns how many were parked after their last
    attempt (the same retry policy as every other queue)."""
    queue = runtime.store.events
    queue.ack(delivery.accepted, by=owner)
    for seq, message in delivery.rejected:
        queue.quarantine([seq], REJECTED_BY_ATTENTIVE, message, by=owner)
    policy = RetryPolicy.from_settings(runtime.sync)
    return retry_rows(queue, dict(delivery.retry), policy, owner, now).parked


def enqueue_profiles(
    runtime: Runtime, cfg: EventsConfig, rounds: dict[int, int], now: datetime
) -> int:
    """Queue each customer's current tier, points balance and segment as an attribute
    write. ``rounds`` maps a customer to the last event seq that changed them, which keys
    the write: re-running the round stores nothing twice, a later round writes again."""
    rows = load_customers(runtime.source, rounds)
    balances = points_balances(runtime.source, rounds)
    writes = []
    for row in rows:
        cid = row["customer_id"]
        attrs = profile_attributes(
            row.get("tier"), balances.get(cid), row.get("insights_segment"), program=cfg.program
        )
        if attrs:
            key = f"profile:{cid}:{rounds[cid]}"
            writes.append(NewWrite(key, "profile", cid, attrs, now))
    return runtime.store.writes.enqueue(writes, now=now).stored


DeliverMany = Callable[[list[list[tuple[int, CustomEvent]]]], list[Delivery]]


def side_by_side(concurrency: int) -> int:
    """How many chunks go out at once: two, unless only one request may be in flight."""
    return min(SENDING_SIDE_BY_SIDE, concurrency)


def chunk_concurrency(concurrency: int) -> int:
    """Requests in flight for one chunk, so that the chunks going out side by side
    together keep at most ``concurrency`` in flight."""
    return max(1, concurrency // side_by_side(concurrency))


def thread_deliverer(runtime: Runtime, workers: int) -> DeliverMany:
    """Chunks sent on threads of this process; ``workers`` requests in flight at most,
    across the chunks going out side by side."""
    per_chunk = chunk_concurrency(workers)
    return lambda chunks: [deliver(runtime, chunk, per_chunk) for chunk in chunks]


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
        "retries_exhausted",
        "not_selected",
        "stale_skipped",
        "dropped",
        "quarantined",
    )
    with leases_released_on_failure(runtime, owner), tuned_gc():
        _relay_rounds(runtime, export, cfg, owner, deliver_many, topics, report)
        if cfg.update_profiles:
            writes = (send_many, wait)
            run_writes(runtime, export, owner, WRITE_KINDS, KIND, writes, report)
    stale = report.counts["stale_sent"] + report.counts["stale_skipped"]
    if stale:
        report.notes.append(
            f"{stale} event(s) were older than 12 hours: Attentive accepts them but they "
            "trigger no journey"
        )
    return report


@dataclass
class _Sending:
    """A chunk of events handed to the sending thread, with what applying it needs."""

    future: Future[list[Delivery]]
    chunk: list[tuple[int, CustomEvent]]
    plan: RelayPlan
    now: datetime


def _relay_rounds(
    runtime: Runtime,
    export: ExportConfig,
    cfg: EventsConfig,
    owner: str,
    deliver_many: DeliverMany,
    topics: Sequence[str],
    report: Report,
) -> None:
    """Lease after lease until the queue is drained or the run's share is taken, keeping
    the rate budget in use: chunks go out side by side with the next one queued, and the
    next lease is planned while the last chunks of the current one go out. What went out
    is applied (acked, quarantined, retried) chunk by chunk as it comes back.

    Order per customer holds: a chunk never splits one recipient's events, and a lease
    skips every customer with a row leased and unexpired, so a lease planned early cannot
    take a customer of one still going out (the run renews its leases while chunks are out,
    however long they take). A row that comes back to be retried is the queue's again: a
    later lease of this run may take it, after its backoff, with that customer's next
    events behind it. If the run fails, what came back is applied first, chunks not
    started are dropped (their rows are still leased, and the caller hands them back to be
    retried), and the error propagates.
    """
    out: set[int] = set()  # seqs in chunks sent or queued, not yet applied
    sending: deque[_Sending] = deque()
    sides = side_by_side(cfg.concurrency)
    lease_seconds = runtime.sync.lease_seconds
    first = True

    def renew() -> None:
        runtime.store.events.renew(owner, lease_seconds)

    def apply_oldest() -> None:
        done = sending[0]
        while True:
            try:
                deliveries = done.future.result(timeout=lease_seconds / 3)
                break
            except FutureTimeout:
                renew()  # a slow chunk keeps its rows, and its customers held
        sending.popleft()
        out.difference_update(seq for seq, _ in done.chunk)
        for delivery in deliveries:
            _apply_chunk(runtime, done, delivery, owner, report)

    def apply_returned() -> None:
        # What came back is acked at once: the less sent and not yet acked, the less a
        # killed run sends again.
        while sending and sending[0].future.done():
            apply_oldest()

    with ThreadPoolExecutor(sides, thread_name_prefix="relay-send") as sender:
        try:
            while report.counts["leased"] < cfg.max_events_per_run:
                apply_returned()
                if sending:
                    renew()
                now = utcnow()
                # The first lease is small, so sending starts soon; the next ones are
                # planned while sending goes on.
                limit = FIRST_LEASE if first else MAX_LEASE
                first = False
                plan = plan_relay(runtime, export, cfg, owner, now, topics, skip=out, limit=limit)
                if not plan.rows:
                    if not sending:
                        break
                    # Every customer left may be one still going out: try again after.
                    while sending:
                        apply_oldest()
                    continue
                _account_plan(runtime, cfg, owner, plan, now, report)
                for chunk in recipient_chunks(plan.sends, CHUNK):
                    run = contextvars.copy_context().run
                    future = sender.submit(run, deliver_many, [chunk])
                    sending.append(_Sending(future, chunk, plan, now))
                    out.update(seq for seq, _ in chunk)
                    apply_returned()
                    # Chunks going out and one waiting: apply the rest as they return.
                    while len(sending) > sides + 1:
                        apply_oldest()
            while sending:
                apply_oldest()
        except BaseException:
            _apply_returned(sending, runtime, owner, report)
            raise


def _apply_returned(sending: deque[_Sending], runtime: Runtime, owner: str, report: Report) -> None:
    """On a failed run: apply the chunks that came back, drop those not started. Nothing
    here replaces the run's own error: a chunk that cannot be applied is logged, and its
    rows, still leased, are handed back with the rest (a resend is the same event to
    Attentive, by its ``externalEventId``)."""
    for item in sending:
        item.future.cancel()
    for item in sending:
        if item.future.cancelled():
            continue
        try:
            deliveries = item.future.result()
        except BaseException:  # the failure being raised, or another one: not applied
            continue
        for delivery in deliveries:
            try:
                _apply_chunk(runtime, item, delivery, owner, report)
            except Exception as exc:  # noqa: BLE001 - the run's own error is the one raised
                log.warning(
                    "a returned chunk of %d event(s) could not be applied (%s); "
                    "its rows are handed back",
                    len(delivery.accepted) + len(delivery.rejected) + len(delivery.retry),
                    mask_text(f"{type(exc).__name__}: {exc}"),
                )
    sending.clear()


def _account_plan(
    runtime: Runtime,
    cfg: EventsConfig,
    owner: str,
    plan: RelayPlan,
    now: datetime,
    report: Report,
) -> None:
    """What a lease decided before anything is sent: counts, quarantine, the events that
    need no send acked, and the profile writes of the customers whose events go out."""
    report.add("leased", len(plan.rows))
    report.add("stale_sent", plan.stale_sent)
    report.add("invalid_emails_dropped", plan.dropped_emails)
    for label in plan.labels.values():
        report.add(label)
    for seq, code, detail in plan.quarantined:
        runtime.store.events.quarantine([seq], code, detail, by=owner)
    finished = [r.seq for r in plan.rows if plan.labels.get(r.seq) in _FINISHED]
    runtime.store.events.ack(finished, by=owner)
    if cfg.update_profiles:
        sent = {seq for seq, _ in plan.sends}
        rounds: dict[int, int] = {}
        for row in plan.rows:
            if row.seq in sent:
                rounds[row.customer_id] = max(row.seq, rounds.get(row.customer_id, 0))
        report.add("profile_writes_queued", enqueue_profiles(runtime, cfg, rounds, now))


def _apply_chunk(
    runtime: Runtime, sent: _Sending, delivery: Delivery, owner: str, report: Report
) -> None:
    record_rewards_sent(runtime, sent.plan.rows, delivery.accepted, sent.now)
    parked = apply_delivery(runtime, delivery, owner, sent.now)
    report.add("accepted_events", len(delivery.accepted))
    users = {seq: event.user for seq, event in sent.chunk}
    external = sum(users[seq].external_only for seq in delivery.accepted)
    report.add("events_external_ids_only", external)
    report.add("rejected_events", len(delivery.rejected))
    report.add("retry_later", len(delivery.retry) - parked)
    report.add("retries_exhausted", parked)


CHUNK = 500
# Two chunks go out at once, so a request waiting out a 429 at the end of one chunk does not
# leave the rate budget unused until it returns; the client's bucket keeps the pace.
SENDING_SIDE_BY_SIDE = 2
FIRST_LEASE = CHUNK * (SENDING_SIDE_BY_SIDE + 1)
_FINISHED = frozenset({"not_selected", "stale_skipped", "dropped"})
