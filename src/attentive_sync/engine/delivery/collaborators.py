"""What a pipeline's run is handed to send and to wait, and how it reports them.

The Prefect flows hand in functions that submit Prefect tasks; the engine-only path (the
benchmark, tests) hands in a thread pool. The composition, and the report whose counts
must add up, is the same either way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from attentive_sync.engine.delivery.kinds import release_leases
from attentive_sync.engine.delivery.settle import (
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
