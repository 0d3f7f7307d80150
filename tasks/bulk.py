"""The shared bulk-send task and the job-following tasks every flow uses."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import TaskRun
from prefect.states import State
from prefect.tasks import Task

from attentive_sync.attentive import BulkJob, RetryableError
from attentive_sync.engine.delivery.settle import SettleResult, poll_jobs, settle_jobs
from attentive_sync.engine.delivery.submit import Batch, SendResult, send_batches
from attentive_sync.engine.runtime import shared_runtime


def retry_on_retryable(task: Task, task_run: TaskRun, state: State) -> bool:
    """Retry only what may succeed later (429, 5xx, transport errors).

    A plain function on purpose: Prefect 3.8 silently skips a retry condition that is a
    partial or a callable object.
    """
    try:
        state.result()
    except RetryableError:
        return True
    except BaseException:
        return False
    return False


@task(
    name="bulk-send",
    retries=3,
    retry_delay_seconds=[10, 30, 90],
    retry_condition_fn=retry_on_retryable,
    cache_policy=NO_CACHE,
)
def bulk_send(batches: list[Batch], kind: str, owner: str) -> list[SendResult]:
    """Submit a group of batches (up to 256 users each) and record every job id before
    returning. A retry re-sends only what the records' own state still allows."""
    runtime = shared_runtime()
    return send_batches(runtime, batches, kind, owner, runtime.sync.send_concurrency)


@task(name="poll-bulk-jobs", cache_policy=NO_CACHE)
def poll_bulk_jobs(job_ids: list[str]) -> list[BulkJob]:
    """Status reads are never cached: a cached PENDING would hide the job's completion."""
    runtime = shared_runtime()
    return poll_jobs(runtime, job_ids, runtime.sync.send_concurrency)


@task(name="settle-bulk-jobs", cache_policy=NO_CACHE)
def settle_bulk_jobs(jobs: list[BulkJob], owner: str) -> list[SettleResult]:
    """Settle the finished jobs this run can claim; a job another run claimed is its."""
    runtime = shared_runtime()
    return settle_jobs(runtime, jobs, owner, runtime.sync.send_concurrency)
