"""The incremental export: queued enter/exit deltas, coalesced, packed, in order.

The queue holds what producers enqueue and, under ``changes_from: diff | both``, what the
membership diff (``diff.py``) queued at the start of the run; under ``diff`` a producer's
delta, like a rebuilt one, sends what the source says when it goes.

Within one lease the latest delta per (customer, audience) wins; the ones it overtook are
done without being sent. A delta the engine rebuilt from the source (a backfill member sent
again) sends what the source says at the time, so it never undoes a change made meanwhile.
Across leases, order is the queue's job: a customer's next change is not leasable while a
job carrying an earlier write of theirs is unfinished.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from attentive_sync.domain.errors import RecordRejected
from attentive_sync.domain.export_config import ExportConfig
from attentive_sync.engine.audience.diff import follows_source
from attentive_sync.engine.delivery.batching import Batcher
from attentive_sync.engine.delivery.submit import Batch, make_batch
from attentive_sync.engine.mapping import customer_row
from attentive_sync.engine.runtime import Runtime
from attentive_sync.engine.stages import stage
from attentive_sync.engine.wire import WireMapper
from attentive_sync.sources.loyalty import load_customers, members_among
from attentive_sync.store.jobs import JobItem
from attentive_sync.store.records import QueuedDelta

KIND = "audience_incremental"


@dataclass
class IncrementalPlan:
    leased: int = 0
    coalesced: int = 0
    not_exported: int = 0
    quarantined: int = 0
    early_flushes: int = 0
    batches: list[Batch] = field(default_factory=list)


def coalesce(rows: list[QueuedDelta]) -> tuple[list[QueuedDelta], list[QueuedDelta]]:
    """Split leased rows into (latest per customer and audience, overtaken), in queue order."""
    latest: dict[tuple[int, str], QueuedDelta] = {}
    for row in sorted(rows, key=lambda r: r.seq):
        latest[(row.customer_id, row.audience)] = row
    kept = sorted(latest.values(), key=lambda r: r.seq)
    kept_seqs = {r.seq for r in kept}
    return kept, [r for r in rows if r.seq not in kept_seqs]


def _members_now(runtime: Runtime, rows: list[QueuedDelta]) -> set[tuple[str, int]]:
    """Which of ``rows``' (audience, customer) pairs are members at the source now."""
    found: set[tuple[str, int]] = set()
    for audience in {row.audience for row in rows}:
        among = [row.customer_id for row in rows if row.audience == audience]
        found |= {(audience, cid) for cid in members_among(runtime.source, audience, among)}
    return found


def plan_incremental(
    runtime: Runtime, config: ExportConfig, owner: str, limit: int = 5000
) -> IncrementalPlan:
    """Lease pending deltas and turn them into batches; overtaken and foreign ones are done."""
    store = runtime.store
    with stage("lease"):
        rows = store.deltas.lease(limit, runtime.sync.lease_seconds, owner)
    plan, fields = IncrementalPlan(leased=len(rows)), config.fields_read()
    exported = set(config.audiences)
    foreign = [r for r in rows if r.audience not in exported]
    kept, overtaken = coalesce([r for r in rows if r.audience in exported])
    store.deltas.ack([r.seq for r in foreign + overtaken], by=owner)
    plan.not_exported, plan.coalesced = len(foreign), len(overtaken)
    with stage("read customers"):
        ids = {r.customer_id for r in kept}
        customers = {c["customer_id"]: c for c in load_customers(runtime.source, ids, fields)}
        follows = {r.seq for r in kept if follows_source(config, r.delta_key)}
        current = _members_now(runtime, [r for r in kept if r.seq in follows])
    with stage("map"):
        _map_rows(runtime, config, owner, kept, customers, follows, current, plan)
    return plan


def _map_rows(
    runtime: Runtime,
    config: ExportConfig,
    owner: str,
    kept: list[QueuedDelta],
    customers: dict[int, dict[str, Any]],
    follows: set[int],
    current: set[tuple[str, int]],
    plan: IncrementalPlan,
) -> None:
    store = runtime.store
    mapper, batcher = WireMapper(config), Batcher[tuple](config.batch_size)
    closed: list[list[tuple]] = []
    refused: dict[tuple[str, str], list[int]] = {}
    # One flags mapping per (audience, value), shared by the records that carry it: the
    # store encodes each distinct one once.
    flags: dict[tuple[str, bool], dict[str, bool]] = {}
    for row in kept:
        member = (
            (row.audience, row.customer_id) in current
            if row.seq in follows
            else row.action == "enter"
        )
        membership = flags.get((row.audience, member))
        if membership is None:
            membership = flags[(row.audience, member)] = {row.audience: member}
        try:
            user = mapper.map(customer_row(customers, row.customer_id), membership)
        except RecordRejected as exc:
            refused.setdefault((exc.code, exc.detail), []).append(row.seq)
            plan.quarantined += 1
            continue
        item = JobItem(row.customer_id, "delta", str(row.seq), membership)
        closed.extend(batcher.add(row.customer_id, (user, item)))
    if len(batcher):
        closed.append(batcher.drain())
    # One transaction per reason, not one per record.
    for (code, detail), seqs in refused.items():
        store.deltas.quarantine(seqs, code, detail, by=owner)
    plan.early_flushes = batcher.early_flushes
    plan.batches = [make_batch(pairs) for pairs in closed]
