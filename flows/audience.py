"""The audience export flows: a one-time backfill and the 30-second incremental run."""

from __future__ import annotations

from prefect import flow
from prefect.runtime import flow_run

from attentive_sync.domain.export_config import ExportConfig
from attentive_sync.engine.audience.export import run_backfill, run_incremental
from attentive_sync.engine.runtime import shared_runtime
from attentive_sync.flows._preflight import PreflightError, preflight, stopped
from attentive_sync.flows._shell import prefect_sender, progress_artifact, publish, thread_pool
from attentive_sync.flows.wait import prefect_waiter

# Prefect's default thread pool is unbounded; bulk requests in flight stay bounded.
SEND_WORKERS = 8


@flow(name="audience-backfill", task_runner=thread_pool(SEND_WORKERS))
def audience_backfill(
    config: ExportConfig,
    run_key: str = "initial",
    wait_seconds: float = 120.0,
    poll_interval_seconds: float = 1.0,
) -> dict[str, int]:
    """Send every current member of the configured audiences (`<slug> = true`).

    Re-running with the same ``run_key`` resumes from its checkpoint; a new ``run_key``
    backfills again from the start.

    Args:
        config: Which audiences to export and how customer fields map to Attentive's.
        run_key: Names this backfill: the same key resumes it, a new key starts over.
        wait_seconds: How long to wait for the bulk jobs to finish before the run ends (any
            job still running is settled by a later run).
        poll_interval_seconds: Seconds between job status reads while waiting.
    """
    try:
        preflight(config)
    except PreflightError as exc:
        return stopped(exc)
    owner = f"backfill:{run_key}:{flow_run.get_id()}"
    report = run_backfill(
        shared_runtime(),
        config,
        run_key,
        prefect_sender(owner),
        prefect_waiter(owner, wait_seconds, poll_interval_seconds),
        progress_artifact("audience-backfill-progress", f"Backfill {run_key}"),
    )
    return publish(report, "audience-backfill-report")


@flow(name="audience-incremental", task_runner=thread_pool(SEND_WORKERS))
def audience_incremental(
    config: ExportConfig,
    wait_seconds: float = 20.0,
    poll_interval_seconds: float = 1.0,
) -> dict[str, int]:
    """Send audience enter/exit changes: `true` on enter, `false` on exit, in order.

    The changes are the queued deltas, a diff of `audience_members` against what was last
    sent, or both, as the configuration's `changes_from` says.

    Args:
        config: Which audiences to export and how customer fields map to Attentive's.
        wait_seconds: How long to wait for the bulk jobs to finish before the run ends (any
            job still running is settled by a later run).
        poll_interval_seconds: Seconds between job status reads while waiting.
    """
    try:
        preflight(config)
    except PreflightError as exc:
        return stopped(exc)
    owner = f"incremental:{flow_run.get_id()}"
    report = run_incremental(
        shared_runtime(),
        config,
        owner,
        prefect_sender(owner),
        prefect_waiter(owner, wait_seconds, poll_interval_seconds),
    )
    return publish(report, "audience-incremental-report")
