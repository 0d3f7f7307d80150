"""Following bulk jobs to a terminal state and applying their per-record results.

For each record: accepted -> the ledger of what Attentive holds, and its queue row is done;
refused -> the quarantine, with Attentive's message; retryable (a 5xx or 429 record, a job
that FAILED, a line missing from the results) -> back to its queue for a later run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeVar

from attentive_sync.attentive import BulkJob, RecordResult
from attentive_sync.domain.errors import REJECTED_BY_ATTENTIVE
from attentive_sync.engine.runtime import Runtime
from attentive_sync.engine.send import QUEUE_KINDS, quarantine_item
from attentive_sync.store.accepted import AcceptedAttribute
from attentive_sync.store.jobs import JobItem
from attentive_sync.store.records import NewDelta
from attentive_sync.store.types import utcnow

RETRIES_EXHAUSTED = "retries_exhausted"
JOB_FAILED = "job_failed"
MAX_ATTEMPTS = 8

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class SettleResult:
    job_id: str
    status: str
    accepted: int = 0
    rejected: int = 0
    retried: int = 0


@dataclass
class WaitResult:
    settled: list[SettleResult] = field(default_factory=list)
    unfinished: list[str] = field(default_factory=list)
    polls: int = 0

    def total(self, name: str) -> int:
        return sum(getattr(s, name) for s in self.settled)


def _fan_out(fn: Callable[[T], R], items: list[T], workers: int) -> list[R]:
    if workers <= 1 or len(items) <= 1:
        return [fn(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
        return list(pool.map(fn, items))


def _poll_one(runtime: Runtime, job_id: str) -> BulkJob:
    job = runtime.client.get_bulk_job(job_id)
    finished_at = utcnow() if job.finished else None
    runtime.store.jobs.update_status(job_id, job.status, finished_at=finished_at)
    return job


def poll_jobs(runtime: Runtime, job_ids: list[str], workers: int = 1) -> list[BulkJob]:
    """Read and store each job's status; unknown statuses count as unfinished."""
    return _fan_out(lambda job_id: _poll_one(runtime, job_id), job_ids, workers)


def settle_jobs(runtime: Runtime, jobs: list[BulkJob], workers: int = 1) -> list[SettleResult]:
    return _fan_out(lambda job: settle_job(runtime, job), jobs, workers)


def _retry_at(attempts: int, now: datetime) -> datetime:
    return now + timedelta(seconds=min(3600, 30 * 2**attempts))


def _results(runtime: Runtime, job: BulkJob) -> dict[int, RecordResult]:
    if job.status != "COMPLETED" or not job.results_url:
        return {}
    return {r.index: r for r in runtime.client.iter_bulk_results(job.results_url)}


def settle_job(runtime: Runtime, job: BulkJob) -> SettleResult:
    """Apply a finished job's results. Safe to repeat: every step is idempotent."""
    store, now = runtime.store, utcnow()
    results = _results(runtime, job)
    outcome = SettleResult(job.job_id, job.status)
    accepted: list[JobItem] = []
    retry: list[tuple[int, JobItem, str]] = []
    for idx, item in enumerate(store.jobs.items(job.job_id)):
        result = results.get(idx)
        if result is not None and result.accepted:
            accepted.append(item)
        elif result is not None and not result.retryable:
            quarantine_item(runtime, item, REJECTED_BY_ATTENTIVE, result.message, result.request)
            outcome.rejected += 1
        else:
            reason = (
                JOB_FAILED
                if job.status == "FAILED"
                else (result.message if result else "no result")
            )
            retry.append((idx, item, reason))
    store.accepted.record_many(
        AcceptedAttribute(i.customer_id, name, value, job.job_id, now)
        for i in accepted
        for name, value in i.attributes.items()
    )
    _ack(runtime, accepted)
    _retry(runtime, job.job_id, retry, now)
    outcome.accepted, outcome.retried = len(accepted), len(retry)
    store.jobs.mark_settled(job.job_id, outcome.accepted, outcome.rejected)
    return outcome


def _ack(runtime: Runtime, items: list[JobItem]) -> None:
    runtime.store.deltas.ack([int(i.source_ref) for i in items if i.source_kind == "delta"])
    runtime.store.events.ack([int(i.source_ref) for i in items if i.source_kind == "event"])


def _retry(
    runtime: Runtime, job_id: str, retry: list[tuple[int, JobItem, str]], now: datetime
) -> None:
    """Queue rows go back to their queue; backfill members become enter/exit deltas."""
    store = runtime.store
    for source_kind, queue in (("delta", store.deltas), ("event", store.events)):
        seqs = {int(i.source_ref): reason for _, i, reason in retry if i.source_kind == source_kind}
        for row in queue.get(list(seqs)):
            if row.attempts + 1 >= MAX_ATTEMPTS:
                queue.quarantine(
                    [row.seq], RETRIES_EXHAUSTED, f"{MAX_ATTEMPTS} attempts: {seqs[row.seq]}"
                )
            else:
                queue.nack([row.seq], seqs[row.seq], _retry_at(row.attempts, now))
    deltas = [
        NewDelta(
            audience, i.customer_id, "enter" if value else "exit", now, f"retry:{job_id}:{idx}"
        )
        for idx, i, _ in retry
        if i.source_kind == "backfill"
        for audience, value in i.attributes.items()
    ]
    store.deltas.enqueue(deltas, now=now)
    for _, item, reason in retry:
        if item.source_kind not in QUEUE_KINDS and item.source_kind != "backfill":
            quarantine_item(runtime, item, JOB_FAILED, reason)


def wait_and_settle(
    job_ids: Iterable[str],
    poll: Callable[[list[str]], list[BulkJob]],
    settle: Callable[[list[BulkJob]], list[SettleResult]],
    deadline_seconds: float,
    poll_interval: float = 1.0,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> WaitResult:
    """Poll the jobs together until each is settled or the deadline passes.

    Jobs still unfinished at the deadline stay unsettled in the store; a later run picks
    them up, so nothing is waited on twice and nothing is lost.
    """
    pending = list(dict.fromkeys(job_ids))
    result = WaitResult()
    stop_at = clock() + deadline_seconds
    while pending:
        result.polls += 1
        finished = [job for job in poll(pending) if job.finished]
        result.settled.extend(settle(finished))
        done = {job.job_id for job in finished}
        pending = [job_id for job_id in pending if job_id not in done]
        if not pending or clock() + poll_interval > stop_at:
            break
        sleep(poll_interval)
    result.unfinished = pending
    return result
