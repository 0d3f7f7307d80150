"""Attribute writes (loyalty profiles, notice figures): queued, coalesced, sent by state.

A write is a row of the ``attribute_writes`` queue, so it shares the queues' lifecycle:
leased by one run, retried with backoff, parked after its attempts. Within a lease a
customer's later write overtakes an earlier one that it fully covers (the latest state
wins), and a write whose values Attentive already holds (the ledger says so; no job of
that customer is unfinished, or it would not have been leased) is done without sending.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from attentive_sync.domain.attributes import build_attributes
from attentive_sync.domain.errors import RecordRejected
from attentive_sync.domain.export_config import ExportConfig
from attentive_sync.domain.users import BulkUser
from attentive_sync.engine.delivery.batching import Batcher
from attentive_sync.engine.delivery.collaborators import SendMany, Wait, send_and_wait, unsettled
from attentive_sync.engine.delivery.submit import Batch, make_batch
from attentive_sync.engine.mapping import customer_row, identifiers_for
from attentive_sync.engine.report import Report, add_dropped_emails
from attentive_sync.engine.runtime import Runtime
from attentive_sync.sources.loyalty import load_customers
from attentive_sync.store.jobs import JobItem
from attentive_sync.store.queue import MAX_LEASE
from attentive_sync.store.records import QueuedWrite

SOURCE_KIND = "write"


@dataclass
class WritesPlan:
    leased: int = 0
    overtaken: int = 0
    unchanged: int = 0
    deferred: int = 0
    quarantined: int = 0
    batches: list[Batch] = field(default_factory=list)


def latest_writes(rows: Sequence[QueuedWrite]) -> tuple[list[QueuedWrite], list[QueuedWrite]]:
    """Split rows into (to send, overtaken): a later write of the same customer that sets
    every attribute an earlier one sets overtakes it."""
    keep: list[QueuedWrite] = []
    overtaken: list[QueuedWrite] = []
    # The attribute names of each customer's kept writes, latest first.
    kept_names: dict[int, list[frozenset[str]]] = {}
    for row in sorted(rows, key=lambda r: r.seq, reverse=True):
        names = frozenset(row.attributes)
        later = kept_names.setdefault(row.customer_id, [])
        if any(names <= k for k in later):
            overtaken.append(row)
        else:
            keep.append(row)
            later.append(names)
    return sorted(keep, key=lambda r: r.seq), overtaken


def _already_held(row: QueuedWrite, ledger: Mapping[int, Mapping[str, Any]]) -> bool:
    held = ledger.get(row.customer_id, {})
    return all(name in held and held[name] == value for name, value in row.attributes.items())


def plan_writes(
    runtime: Runtime, export: ExportConfig, owner: str, kinds: Sequence[str]
) -> WritesPlan:
    store = runtime.store
    rows = store.writes.lease(MAX_LEASE, runtime.sync.lease_seconds, owner, only={"kind": kinds})
    plan = WritesPlan(leased=len(rows))
    keep, overtaken = latest_writes(rows)
    # One write per customer per lease: a later one that the first does not cover goes
    # back untried and follows once the first one's job has settled.
    first: dict[int, QueuedWrite] = {}
    for row in keep:
        first.setdefault(row.customer_id, row)
    later = [r for r in keep if first[r.customer_id] is not r]
    store.writes.unlease([r.seq for r in later], by=owner)
    keep = list(first.values())
    ledger = store.accepted.for_customers(r.customer_id for r in keep)
    unchanged = [r for r in keep if _already_held(r, ledger)]
    store.writes.ack([r.seq for r in overtaken + unchanged], by=owner)
    plan.overtaken, plan.unchanged, plan.deferred = len(overtaken), len(unchanged), len(later)
    done = {r.seq for r in unchanged}
    to_send = [r for r in keep if r.seq not in done]
    customers = {
        c["customer_id"]: c
        for c in load_customers(runtime.source, {r.customer_id for r in to_send})
    }
    batcher: Batcher[tuple[BulkUser, JobItem]] = Batcher(export.batch_size)
    closed: list[list[tuple[BulkUser, JobItem]]] = []
    for row in to_send:
        try:
            ids = identifiers_for(export, customer_row(customers, row.customer_id))
        except RecordRejected as exc:
            store.writes.quarantine([row.seq], exc.code, exc.detail, by=owner)
            plan.quarantined += 1
            continue
        user = BulkUser(
            customer_id=row.customer_id,
            identifiers=ids,
            attributes=build_attributes(custom=row.attributes),
        )
        item = JobItem(row.customer_id, SOURCE_KIND, str(row.seq), row.attributes)
        closed.extend(batcher.add(row.customer_id, (user, item)))
    if len(batcher):
        closed.append(batcher.drain())
    plan.batches = [make_batch(pairs) for pairs in closed]
    return plan


def run_writes(
    runtime: Runtime,
    export: ExportConfig,
    owner: str,
    kinds: Sequence[str],
    job_kind: str,
    collaborators: tuple[SendMany, Wait],
    report: Report,
) -> None:
    """Send the queued writes of ``kinds`` as jobs of ``job_kind`` until none is left
    (a lease at a time), settling earlier runs' jobs of that kind as well."""
    send_many, wait = collaborators
    report.must_add_up(
        "writes_leased",
        "writes_overtaken",
        "writes_unchanged",
        "writes_deferred",
        "writes_quarantined",
        "records_sent",
        "rejected_on_submit",
        "held_back",
    )
    earlier = unsettled(runtime)
    while True:
        plan = plan_writes(runtime, export, owner, kinds)
        report.add("writes_leased", plan.leased)
        report.add("writes_overtaken", plan.overtaken)
        report.add("writes_unchanged", plan.unchanged)
        report.add("writes_deferred", plan.deferred)
        report.add("writes_quarantined", plan.quarantined)
        add_dropped_emails(report, plan.batches)
        send_and_wait(report, plan.batches, job_kind, send_many, wait, earlier)
        earlier = []
        if plan.leased < MAX_LEASE or plan.leased == plan.deferred:
            return
