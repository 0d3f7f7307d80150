"""What a pipeline's run is handed to send and to wait, and how it reports them.

The Prefect flows hand in functions that submit Prefect tasks; the engine-only path (the
benchmark, tests) hands in a thread pool. The composition, and the report whose counts
must add up, is the same either way.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager

from attentive_sync.engine.delivery.kinds import release_leases
from attentive_sync.engine.delivery.settle import (
    SettleResult,
    WaitResult,
    poll_jobs,
    settle_jobs,
    wait_and_settle,
)
from attentive_sync.engine.delivery.submit import Batch, SendResult, send_batches
from attentive_sync.engine.report import Report
from attentive_sync.engine.runtime import Runtime
from attentive_sync.store.types import utcnow

log = logging.getLogger("attentive_sync.engine")

SendMany = Callable[[list[Batch], str], list[SendResult]]
Wait = Callable[[list[str]], WaitResult]
Progress = Callable[[float, str], None]


def thread_pool_sender(runtime: Runtime, owner: str, workers: int) -> SendMany:
    """Send batches on ``workers`` threads (the engine-only path; Prefect uses a task)."""
    return lambda batches, kind: send_batches(runtime, batches, kind, owner, workers)


def direct_waiter(runtime: Runtime, deadline_seconds: float, owner: str = "direct") -> Wait:
    workers = runtime.sync.send_concurrency

    def wait(job_ids: list[str]) -> WaitResult:
        return wait_and_settle(
            job_ids,
            lambda ids: poll_jobs(runtime, ids, workers),
            lambda jobs: settle_jobs(runtime, jobs, owner, workers),
            deadline_seconds,
            runtime.sync.poll_interval_seconds,
        )

    return wait


def add_sends(report: Report, results: list[SendResult]) -> list[str]:
    job_ids = [job for r in results for job in r.job_ids]
    report.add("records_sent", sum(r.records_sent for r in results))
    report.add("rejected_on_submit", sum(r.rejected for r in results))
    report.add("held_back", sum(r.held_back for r in results))
    report.add("bulk_requests", sum(r.requests for r in results))
    report.add("uncertain_submissions", sum(r.uncertain for r in results))
    report.add("jobs", len(job_ids))
    return job_ids


def add_wait(report: Report, wait: WaitResult) -> None:
    report.add("jobs_settled", len(wait.settled))
    report.add("jobs_unfinished", len(wait.unfinished))
    for name in ("accepted", "rejected", "retried", "parked", "assumed_applied"):
        report.add(name, wait.total(name))
    report.add("jobs_results_unreadable", wait.total("results_unreadable"))
    if wait.unfinished:
        report.notes.append(
            f"{len(wait.unfinished)} job(s) still running; a later run settles them"
        )


def unsettled(runtime: Runtime, kind: str | None = None) -> list[str]:
    """Jobs (of ``kind``, or of every kind) that earlier runs left unsettled. Any run may
    settle them: each is claimed first, so two runs never settle one job, and a job that
    holds back a customer's next write is not left waiting for its own kind's next run."""
    return [job.job_id for job in runtime.store.jobs.list_unsettled(kind)]


# Jobs sent (256 x 256 = 65,536 records) before a wait on them starts behind the sends.
# Through Prefect each wait is a subflow run with task runs of its own: with 64, a drain of
# 100,000 deltas ran 30 % slower there (benchmarks/README.md).
SETTLE_BEHIND_AT_LEAST = 256


class SettleBehind:
    """Settles a run's earlier jobs on a thread of its own while the run sends later ones.

    A long drain then ends soon after its last send, rather than starting to read job
    statuses and results (which have rate limits of their own) only then; and the jobs
    in flight, and the rows they carry, stay few. One wait runs at a time, over the jobs
    sent since the last one began once there are ``at_least`` of them (fewer waits; on
    Prefect each is a ``wait-for-bulk-jobs`` subflow run); ``finish`` waits for whatever
    is left. A job still unfinished at a wait's deadline is not waited on again: it stays
    recorded, unsettled, and a later run settles it, as after any wait.
    """

    def __init__(self, wait: Wait, at_least: int | None = None) -> None:
        self._wait = wait
        self._at_least = SETTLE_BEHIND_AT_LEAST if at_least is None else at_least
        self._pending: list[str] = []
        self._settled: list[SettleResult] = []
        self._unfinished: list[str] = []
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="settle-behind")
        self._running: Future[WaitResult] | None = None

    def add(self, job_ids: list[str]) -> None:
        """Jobs just sent; a wait starts on the pending ones if none is running. A wait
        that failed raises here."""
        self._pending += job_ids
        self._collect(block=False)
        if self._running is None and len(self._pending) >= self._at_least:
            ids, self._pending = self._pending, []
            run = contextvars.copy_context().run
            self._running = self._pool.submit(run, self._wait, ids)

    def finish(self) -> WaitResult:
        """Wait for the running wait, then for every job still pending."""
        try:
            self._collect(block=True)
            last = self._wait(self._pending) if self._pending else WaitResult()
        finally:
            self._pool.shutdown(wait=True)
        return WaitResult(self._settled + last.settled, self._unfinished + last.unfinished)

    def abandon(self) -> None:
        """The run failed: let a running wait end (its jobs stay recorded, unsettled, for
        a later run), its error dropped."""
        self._pool.shutdown(wait=True)

    def _collect(self, block: bool) -> None:
        if self._running is None or not (block or self._running.done()):
            return
        running, self._running = self._running, None
        result = running.result()
        self._settled += result.settled
        self._unfinished += result.unfinished


def send_and_wait(
    report: Report,
    batches: list[Batch],
    kind: str,
    send_many: SendMany,
    wait: Wait,
    earlier: list[str] | None = None,
) -> None:
    """Send ``batches`` as jobs of ``kind``, then settle them (and ``earlier`` jobs)."""
    job_ids = add_sends(report, send_many(batches, kind)) if batches else []
    add_wait(report, wait((earlier or []) + job_ids))


@contextmanager
def leases_released_on_failure(runtime: Runtime, owner: str) -> Iterator[None]:
    """Run a body that leases as ``owner``; if it fails, its leased rows go back at once,
    the attempt counted and the error kept (they neither sit leased until the lease
    expires nor look untouched), and the error propagates."""
    try:
        yield
    except Exception as exc:
        error = f"the run failed: {type(exc).__name__}: {exc}"
        released = release_leases(runtime, owner, error, utcnow())
        log.warning(
            "run %s failed; %d leased row(s) handed back, %d parked after their last attempt",
            owner,
            released.retried,
            released.parked,
        )
        raise
