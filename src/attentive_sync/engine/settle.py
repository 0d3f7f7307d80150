"""Following bulk jobs to a terminal state and applying their per-record results.

For each record: accepted -> the ledger of what Attentive holds, and its queue row is done;
refused -> the quarantine, with Attentive's message; retryable (a 5xx or 429 record, a job
that FAILED, a line missing from the results) -> back to its queue for a later run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeVar

from attentive_sync.attentive import AttentiveError, BulkJob, NotFound, RecordResult
from attentive_sync.domain.errors import REJECTED_BY_ATTENTIVE
from attentive_sync.engine.runtime import Runtime
from attentive_sync.engine.send import QUEUE_KINDS, quarantine_item
from attentive_sync.sources.loyalty import is_member
from attentive_sync.store.accepted import AcceptedAttribute
from attentive_sync.store.jobs import JobItem
from attentive_sync.store.records import NewDelta
from attentive_sync.store.types import utcnow

log = logging.getLogger("attentive_sync.engine")

RETRIES_EXHAUSTED = "retries_exhausted"
LOST = "LOST"
JOB_FAILED = "job_failed"
MAX_ATTEMPTS = 8
POLL_SLICE = 200

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class SettleResult:
    job_id: str
    status: str
    accepted: int = 0
    rejected: int = 0
    retried: int = 0
    parked: int = 0


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
    try:
        job = runtime.client.get_bulk_job(job_id)
    except NotFound:
        # Attentive keeps jobs two weeks; a job it no longer knows is settled as lost.
        job = BulkJob(job_id, LOST, None, None)
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


def _results(runtime: Runtime, job: BulkJob) -> tuple[dict[int, RecordResult], str]:
    """Per-record results by index, and why there are none when a job has none."""
    if job.status == "FAILED":
        return {}, JOB_FAILED
    if job.status == LOST:
        return {}, "Attentive no longer knows this job"
    if not job.results_url:
        return {}, "the completed job has no results file"
    try:
        return {r.index: r for r in runtime.client.iter_bulk_results(job.results_url)}, ""
    except AttentiveError as exc:
        log.warning(
            "results of job %s are unreadable (%s); its records are retried", job.job_id, exc
        )
        return {}, "results file unreadable"


def settle_job(runtime: Runtime, job: BulkJob) -> SettleResult:
    """Apply a finished job's results to the queues, the quarantine and the ledger.

    One run settles a given job kind at a time (each deployment runs one at a time and
    waits only on its own kind), so a job is not settled twice concurrently.
    """
    store, now = runtime.store, utcnow()
    results, missing = _results(runtime, job)
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
            retry.append((idx, item, result.message if result else missing or "no result"))
    # Latest wins by *submission* time: a job that settles late must not overwrite a
    # value that a job submitted after it already set.
    submitted = store.jobs.get(job.job_id).submitted_at
    store.accepted.record_many(
        AcceptedAttribute(i.customer_id, name, value, job.job_id, submitted)
        for i in accepted
        for name, value in i.attributes.items()
    )
    _ack(runtime, accepted)
    outcome.retried, outcome.parked = _retry(runtime, job.job_id, retry, now)
    outcome.accepted = len(accepted)
    store.jobs.mark_settled(job.job_id, outcome.accepted, outcome.rejected)
    return outcome


def _ack(runtime: Runtime, items: list[JobItem]) -> None:
    runtime.store.deltas.ack([int(i.source_ref) for i in items if i.source_kind == "delta"])
    runtime.store.events.ack([int(i.source_ref) for i in items if i.source_kind == "event"])


def _retry(
    runtime: Runtime, job_id: str, retry: list[tuple[int, JobItem, str]], now: datetime
) -> tuple[int, int]:
    """Send records back for a later run; returns (retried, parked in the quarantine).

    Queue rows go back to their queue (until their attempts run out); a backfill member
    becomes an ``enter`` delta if still a member; a notice or profile write is parked,
    and its replay rebuilds it.
    """
    store, retried, parked = runtime.store, 0, 0
    for source_kind, queue in (("delta", store.deltas), ("event", store.events)):
        seqs = {int(i.source_ref): reason for _, i, reason in retry if i.source_kind == source_kind}
        for row in queue.get(list(seqs)):
            if row.attempts + 1 >= MAX_ATTEMPTS:
                detail = f"{MAX_ATTEMPTS} attempts: {seqs[row.seq]}"
                parked += queue.quarantine([row.seq], RETRIES_EXHAUSTED, detail)
            else:
                retried += queue.nack([row.seq], seqs[row.seq], _retry_at(row.attempts, now))
    members = [(idx, i) for idx, i, _ in retry if i.source_kind == "backfill"]
    deltas = [
        NewDelta(audience, i.customer_id, "enter", now, f"retry:{job_id}:{idx}")
        for idx, i in members
        for audience in i.attributes
        if is_member(runtime.source, audience, i.customer_id)
    ]
    store.deltas.enqueue(deltas, now=now)
    retried += len(members)
    for _, item, reason in retry:
        if item.source_kind not in QUEUE_KINDS and item.source_kind != "backfill":
            quarantine_item(runtime, item, JOB_FAILED, reason)
            parked += 1
    return retried, parked


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
        done: set[str] = set()
        # Oldest first, a slice at a time, so a long backlog cannot overrun the deadline.
        for start in range(0, len(pending), POLL_SLICE):
            finished = [job for job in poll(pending[start : start + POLL_SLICE]) if job.finished]
            result.settled.extend(settle(finished))
            done |= {job.job_id for job in finished}
            if clock() > stop_at:
                break
        pending = [job_id for job_id in pending if job_id not in done]
        if not pending or clock() + poll_interval > stop_at:
            break
        sleep(poll_interval)
    result.unfinished = pending
    return result
