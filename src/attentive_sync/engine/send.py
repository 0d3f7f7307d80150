"""The shared bulk send: one batch to Attentive, its job id recorded before any waiting."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from attentive_sync.domain.errors import REJECTED_BY_ATTENTIVE
from attentive_sync.domain.users import BulkUser
from attentive_sync.engine.bulk import SubmittedJob, submit_isolating
from attentive_sync.engine.runtime import Runtime
from attentive_sync.masking import mask_payload
from attentive_sync.store.jobs import JobItem

QUEUE_KINDS = frozenset({"delta", "event"})


@dataclass(frozen=True)
class Batch:
    """Users for one bulk request and, position by position, where each came from."""

    users: tuple[BulkUser, ...]
    items: tuple[JobItem, ...]

    def __post_init__(self) -> None:
        if len(self.users) != len(self.items):
            raise ValueError("a batch needs one job item per user")


@dataclass
class SendResult:
    job_ids: list[str] = field(default_factory=list)
    records_sent: int = 0
    rejected: int = 0
    requests: int = 0


def make_batch(pairs: Sequence[tuple[BulkUser, JobItem]]) -> Batch:
    return Batch(tuple(u for u, _ in pairs), tuple(i for _, i in pairs))


def send_batch(runtime: Runtime, batch: Batch, kind: str, run_label: str) -> SendResult:
    """Submit ``batch`` (bisecting on a whole-request 400) and record every job it became.

    Each job is recorded the moment Attentive accepts it, and records a recorded job
    already carries are left out, so a retried send never sends them twice. Retryable
    errors propagate so the caller's retry owner can act; records Attentive refused
    outright are quarantined here with its message.
    """
    pending = _not_yet_carried(runtime, batch)
    by_user = {id(u): item for u, item in pending}
    result = SendResult()
    if not pending:
        return result

    def record(job: SubmittedJob) -> None:
        items = [by_user[id(u)] for u in job.users]
        runtime.store.jobs.record_job(job.job_id, kind, items, run_label)
        result.job_ids.append(job.job_id)
        result.records_sent += len(items)

    outcome = submit_isolating(runtime.client, [u for u, _ in pending], record)
    result.requests = outcome.requests
    for user, message in outcome.rejected:
        quarantine_item(runtime, by_user[id(user)], REJECTED_BY_ATTENTIVE, message, user.to_wire())
        result.rejected += 1
    return result


def send_batches(
    runtime: Runtime, batches: list[Batch], kind: str, run_label: str, workers: int
) -> list[SendResult]:
    """Send several batches at once on ``workers`` threads (the shared rate limiter paces
    them). A retry of the whole group is safe: what a recorded job carries is skipped."""
    if len(batches) <= 1 or workers <= 1:
        return [send_batch(runtime, b, kind, run_label) for b in batches]
    with ThreadPoolExecutor(min(workers, len(batches)), thread_name_prefix="bulk-send") as pool:
        return list(pool.map(lambda b: send_batch(runtime, b, kind, run_label), batches))


def _not_yet_carried(runtime: Runtime, batch: Batch) -> list[tuple[BulkUser, JobItem]]:
    carried: set[tuple[str, str]] = set()
    for source_kind in {item.source_kind for item in batch.items}:
        refs = [item.source_ref for item in batch.items if item.source_kind == source_kind]
        carried |= {(source_kind, ref) for ref in runtime.store.jobs.carried(source_kind, refs)}
    return [
        (user, item)
        for user, item in zip(batch.users, batch.items, strict=True)
        if (item.source_kind, item.source_ref) not in carried
    ]


def quarantine_item(
    runtime: Runtime, item: JobItem, code: str, detail: str, payload: object = None
) -> None:
    """Park one record: a queue row through its queue, anything else in the quarantine."""
    masked = mask_payload(payload) if payload is not None else None
    if item.source_kind in QUEUE_KINDS:
        queue = runtime.store.deltas if item.source_kind == "delta" else runtime.store.events
        seq = int(item.source_ref)
        queue.quarantine([seq], code, detail, payloads={seq: masked} if masked else None)
    else:
        runtime.store.quarantine.add(
            item.source_kind,
            item.source_ref,
            code,
            detail,
            customer_id=item.customer_id,
            payload=masked,
        )
