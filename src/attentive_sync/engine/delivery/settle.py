"""Following bulk jobs to a terminal state and applying their per-record results.

Each job is settled by one run: the run claims it first (``claim_for_settling``), and
every row transition checks that the row is still the job's. For each record: accepted
-> the ledger of what Attentive holds and, for a queue row, done (both in the transaction
that marks the job settled: ``JobRepository.mark_settled``); refused -> its
lifecycle's ``rejected`` (the quarantine, with Attentive's message); retryable (a 5xx or
429 record, a job that FAILED or that Attentive no longer knows, a line missing from the
results, a results download that failed or broke off) -> its lifecycle's ``retry_later``:
the record is sent again by its state, never skipped because a job once carried it.

A COMPLETED job whose results cannot be read at all (no results file, a file with no
record, or one whose content is not the documented record-and-response lines) has had its
records applied by Attentive's own account; sending them again would repeat that for
ever. Its records are counted as applied (``assumed_applied`` in the run report), their
queue rows done, but the ledger of accepted values does not record them, so a
later write of the same value is sent rather than skipped.
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from attentive_sync.attentive import (
    AttentiveError,
    BulkJob,
    NotFound,
    RecordResult,
    ResultsUnreadable,
)
from attentive_sync.domain.errors import REJECTED_BY_ATTENTIVE
from attentive_sync.engine.delivery.kinds import RetryOutcome, lifecycle
from attentive_sync.engine.delivery.submit import hold_uncertain
from attentive_sync.engine.runtime import Runtime
from attentive_sync.engine.stages import stage
from attentive_sync.store.jobs import JobItem
from attentive_sync.store.types import utcnow

log = logging.getLogger("attentive_sync.engine")

LOST = "LOST"
POLL_SLICE = 200
# How long a run may take to settle a job it claimed before another run may. Settling is
# a results download of at most 256 lines and a few transactions; were a claim to run out
# mid-settlement, every row transition still checks the row is the job's, so a second
# settlement changes nothing twice.
SETTLE_CLAIM_SECONDS = 60.0

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
    # Records of a COMPLETED job whose results could not be read at all, counted as applied.
    assumed_applied: int = 0
    results_unreadable: int = 0


@dataclass
class WaitResult:
    settled: list[SettleResult] = field(default_factory=list)
    unfinished: list[str] = field(default_factory=list)

    def total(self, name: str) -> int:
        return sum(getattr(s, name) for s in self.settled)


def _fan_out(fn: Callable[[T], R], items: list[T], workers: int) -> list[R]:
    if workers <= 1 or len(items) <= 1:
        return [fn(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
        return list(pool.map(fn, items))


def _poll_one(runtime: Runtime, job_id: str) -> BulkJob:
    with stage("settle: poll"):
        try:
            job = runtime.client.get_bulk_job(job_id)
        except NotFound:
            # Attentive keeps jobs two weeks; a job it no longer knows is settled as lost.
            job = BulkJob(job_id, LOST, None, None)
        if not job.finished:
            # A finished job's status is stored with the claim that settles it.
            runtime.store.jobs.update_status(job_id, job.status)
    return job


def poll_jobs(runtime: Runtime, job_ids: list[str], workers: int = 1) -> list[BulkJob]:
    """Read each job's status, and store it for a job still running (a finished job's
    is stored by the claim that settles it); unknown statuses count as unfinished."""
    return _fan_out(lambda job_id: _poll_one(runtime, job_id), job_ids, workers)


def settle_jobs(
    runtime: Runtime, jobs: list[BulkJob], owner: str, workers: int = 1
) -> list[SettleResult]:
    """Settle the finished ``jobs`` this run can claim; jobs another run holds are left
    to it (they are neither settled twice nor waited on here)."""
    settled = _fan_out(lambda job: _claim_and_settle(runtime, job, owner), jobs, workers)
    return [result for result in settled if result is not None]


def _claim_and_settle(runtime: Runtime, job: BulkJob, owner: str) -> SettleResult | None:
    # Claimed one job at a time, just before it is settled, and briefly: a run killed
    # while settling holds its job (and the job's customers) back for seconds, not minutes.
    with stage("settle: claim"):
        claimed = runtime.store.jobs.claim_for_settling(
            [job.job_id], owner, SETTLE_CLAIM_SECONDS, finished=job.status if job.finished else None
        )
    if not claimed:
        return None
    return settle_job(runtime, job)


@dataclass
class _Results:
    """A job's per-record results by index; ``missing`` says why a record has none."""

    by_index: dict[int, RecordResult] = field(default_factory=dict)
    missing: str = ""
    # A COMPLETED job whose results cannot be read at all: its records count as applied.
    assumed: str = ""


def _results(runtime: Runtime, job: BulkJob, carried: int) -> _Results:
    """Per-record results by index, and why there are none when a job has none.

    The file is read as it streams and only the job's own ``carried`` records are kept
    (an accepted one without its echoed request), so memory follows the job, never the
    file: a results file of a million lines costs no more than one of 256.
    """
    status = job.status.upper()
    if status == LOST:
        return _Results(missing="Attentive no longer knows this job")
    if status != "COMPLETED":
        return _Results(missing=f"the job {status} at Attentive")
    if not job.results_url:
        return _Results(assumed="the completed job has no results file")
    results: dict[int, RecordResult] = {}
    lines = 0
    try:
        for result in runtime.client.iter_bulk_results(job.results_url):
            lines += 1
            if 0 <= result.index < carried:
                keep = result
                if result.accepted and result.request:
                    keep = RecordResult(result.index, result.status, result.message, {})
                results[result.index] = keep
    except ResultsUnreadable as exc:
        if exc.broke_off:
            return _unread(job, exc)
        return _Results(assumed=f"its results file cannot be read ({exc})")
    except AttentiveError as exc:
        return _unread(job, exc)
    if lines == 0 and carried:
        return _Results(assumed="its results file holds no record")
    return _Results(results)


def _unread(job: BulkJob, exc: AttentiveError) -> _Results:
    log.warning(
        "results of job %s could not be downloaded (%s); its records are retried", job.job_id, exc
    )
    return _Results(missing="results file could not be downloaded")


def settle_job(runtime: Runtime, job: BulkJob) -> SettleResult:
    """Apply a finished job's results (the caller holds the job's settle claim)."""
    store, now = runtime.store, utcnow()
    with stage("settle: items"):
        items = store.jobs.items(job.job_id)
    if job.status == LOST:
        # Attentive answered 404: if it only does not know the job yet, the job may still
        # land, so its customers wait as after any answer that was lost.
        hold_uncertain(runtime, items)
    with stage("settle: results"):
        found = _results(runtime, job, len(items))
    if found.assumed:
        return _settle_unreadable(runtime, job, items, found.assumed)
    with stage("settle: apply"):
        return _apply(runtime, job, items, found, now)


def _apply(
    runtime: Runtime, job: BulkJob, items: list[JobItem], found: _Results, now: datetime
) -> SettleResult:
    store = runtime.store
    outcome = SettleResult(job.job_id, job.status)
    accepted: list[JobItem] = []
    retry: list[tuple[JobItem, str]] = []
    for idx, item in enumerate(items):
        result = found.by_index.get(idx)
        if result is not None and result.accepted:
            accepted.append(item)
        elif result is not None and not result.retryable:
            lifecycle(item).rejected(
                runtime, item, REJECTED_BY_ATTENTIVE, result.message, result.request, job.job_id
            )
            outcome.rejected += 1
        else:
            retry.append((item, result.message if result else found.missing or "no result"))
    retried = RetryOutcome()
    for failed in _by_kind(retry, lambda pair: pair[0]).values():
        retried.add(lifecycle(failed[0][0]).retry_later(runtime, failed, job.job_id, now))
    outcome.retried, outcome.parked = retried.retried, retried.parked
    outcome.accepted = len(accepted)
    # One transaction: the accepted rows are done, their values go to the ledger (latest
    # wins by *submission* time), and the job is settled.
    if not store.jobs.mark_settled(
        job.job_id, outcome.accepted, outcome.rejected, done=accepted, values=accepted
    ):
        return _settled_elsewhere(job)
    return outcome


def _settle_unreadable(
    runtime: Runtime, job: BulkJob, items: list[JobItem], why: str
) -> SettleResult:
    """The policy for a COMPLETED job whose results cannot be read at all (module doc)."""
    log.warning(
        "job %s COMPLETED but %s: its %d record(s) are counted as applied, not sent again",
        job.job_id,
        why,
        len(items),
    )
    # Done, as accepted; what Attentive holds for them is not known, so the ledger is not
    # told (see ``record_job``: recording the job made it forget their attributes).
    if not runtime.store.jobs.mark_settled(job.job_id, len(items), 0, done=items):
        return _settled_elsewhere(job)
    return SettleResult(job.job_id, job.status, assumed_applied=len(items), results_unreadable=1)


def _settled_elsewhere(job: BulkJob) -> SettleResult:
    """This run's claim ran out while it settled, and another run settled the job: its
    results count there (the moves this run made were checked against row ownership)."""
    log.warning("job %s was settled by another run meanwhile; nothing applied twice", job.job_id)
    return SettleResult(job.job_id, job.status)


def _by_kind(entries: Iterable[T], item_of: Callable[[T], JobItem]) -> dict[str, list[T]]:
    groups: dict[str, list[T]] = {}
    for entry in entries:
        groups.setdefault(item_of(entry).source_kind, []).append(entry)
    return groups


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

    The jobs a poll finds finished are settled on a thread of their own while the next
    slice is polled, so downloads and ledger writes overlap the status reads (``settle``
    runs in a copy of the caller's context: a Prefect task called there belongs to the
    caller's flow run). A settlement that fails ends the wait with its error.

    Jobs still unfinished at the deadline stay unsettled in the store; a later run picks
    them up, so nothing is waited on twice and nothing is lost.
    """
    pending = list(dict.fromkeys(job_ids))
    result = WaitResult()
    stop_at = clock() + deadline_seconds
    settling: list[Future[list[SettleResult]]] = []

    def collect(block: bool) -> None:
        while settling and (block or settling[0].done()):
            result.settled.extend(settling.pop(0).result())

    with ThreadPoolExecutor(1, thread_name_prefix="settle") as settler:
        try:
            while pending:
                done: set[str] = set()
                # Oldest first, a slice at a time, so a long backlog cannot overrun the
                # deadline.
                for start in range(0, len(pending), POLL_SLICE):
                    polled = poll(pending[start : start + POLL_SLICE])
                    if finished := [job for job in polled if job.finished]:
                        run = contextvars.copy_context().run
                        settling.append(settler.submit(run, settle, finished))
                    done |= {job.job_id for job in finished}
                    collect(block=False)
                    if clock() > stop_at:
                        break
                pending = [job_id for job_id in pending if job_id not in done]
                if not pending or clock() + poll_interval > stop_at:
                    break
                sleep(poll_interval)
        except BaseException:
            # The wait failed: settlements not started yet are dropped (their jobs are not
            # claimed, so a later run settles them); a running one ends before this does.
            for future in settling:
                future.cancel()
            raise
        collect(block=True)
    result.unfinished = pending
    return result
