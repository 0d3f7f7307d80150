"""The wait-for-bulk-jobs subflow: polling a run's jobs together (one per run; a long
incremental drain runs more, settling earlier leases' jobs while it sends later ones)."""

from __future__ import annotations

from prefect import flow, get_run_logger

from attentive_sync.engine.delivery.collaborators import Wait
from attentive_sync.engine.delivery.settle import WaitResult, wait_and_settle
from attentive_sync.tasks.bulk import poll_bulk_jobs, settle_bulk_jobs


@flow(name="wait-for-bulk-jobs", log_prints=True)
def wait_for_bulk_jobs(
    job_ids: list[str],
    owner: str,
    deadline_seconds: float = 20.0,
    poll_interval_seconds: float = 1.0,
) -> WaitResult:
    """Poll until each job is COMPLETED or FAILED or the deadline passes, settling as they end
    (each job under ``owner``'s claim, so no other run settles it too)."""
    return wait_and_settle(
        job_ids,
        lambda ids: poll_bulk_jobs(ids),
        lambda jobs: settle_bulk_jobs(jobs, owner) if jobs else [],
        deadline_seconds,
        poll_interval_seconds,
    )


def prefect_waiter(owner: str, deadline_seconds: float, poll_interval_seconds: float) -> Wait:
    """The engine's ``Wait`` collaborator, backed by this subflow (skipped when idle)."""

    def wait(job_ids: list[str]) -> WaitResult:
        if not job_ids:
            return WaitResult()
        result = wait_for_bulk_jobs(job_ids, owner, deadline_seconds, poll_interval_seconds)
        others = len(job_ids) - len(result.settled) - len(result.unfinished)
        get_run_logger().info(
            "bulk jobs: %d to follow; %d settled here, %d by another run, %d still running "
            "(a later run settles them)",
            len(job_ids),
            len(result.settled),
            others,
            len(result.unfinished),
        )
        return result

    return wait
