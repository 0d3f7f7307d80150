"""Whole runs of the audience export, with their collaborators passed in.

The Prefect flows hand in functions that submit Prefect tasks; the engine-only path (the
benchmark, tests) hands in a thread pool. The composition, and the report whose counts
must add up, is the same either way.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import func, select

from attentive_sync.domain.export_config import ExportConfig
from attentive_sync.engine import backfill, incremental
from attentive_sync.engine.checks import check_against_source
from attentive_sync.engine.prefetch import prefetched
from attentive_sync.engine.report import Report
from attentive_sync.engine.runtime import Runtime
from attentive_sync.engine.send import Batch, SendResult, send_batches
from attentive_sync.engine.settle import WaitResult, poll_jobs, settle_jobs, wait_and_settle
from attentive_sync.sources.schema import audience_members
from attentive_sync.store.queue import MAX_LEASE

SendMany = Callable[[list[Batch], str], list[SendResult]]
Wait = Callable[[list[str]], WaitResult]
Progress = Callable[[float, str], None]


def thread_pool_sender(runtime: Runtime, run_label: str, workers: int) -> SendMany:
    """Send batches on ``workers`` threads (the engine-only path; Prefect uses a task)."""
    return lambda batches, kind: send_batches(runtime, batches, kind, run_label, workers)


def direct_waiter(runtime: Runtime, deadline_seconds: float) -> Wait:
    workers = runtime.sync.send_concurrency

    def wait(job_ids: list[str]) -> WaitResult:
        return wait_and_settle(
            job_ids,
            lambda ids: poll_jobs(runtime, ids, workers),
            lambda jobs: settle_jobs(runtime, jobs, workers),
            deadline_seconds,
            runtime.sync.poll_interval_seconds,
        )

    return wait


def add_sends(report: Report, results: list[SendResult]) -> list[str]:
    job_ids = [job for r in results for job in r.job_ids]
    report.add("records_sent", sum(r.records_sent for r in results))
    report.add("rejected_on_submit", sum(r.rejected for r in results))
    report.add("bulk_requests", sum(r.requests for r in results))
    report.add("jobs", len(job_ids))
    return job_ids


def add_wait(report: Report, wait: WaitResult) -> None:
    report.add("jobs_settled", len(wait.settled))
    report.add("jobs_unfinished", len(wait.unfinished))
    for name in ("accepted", "rejected", "retried", "parked"):
        report.add(name, wait.total(name))
    if wait.unfinished:
        report.notes.append(
            f"{len(wait.unfinished)} job(s) still running; a later run settles them"
        )


def unsettled(runtime: Runtime, kind: str) -> list[str]:
    """Jobs of ``kind`` that earlier runs left running: each flow settles its own kind only,
    so two flows never settle one job at the same time."""
    return [job.job_id for job in runtime.store.jobs.list_unsettled(kind)]


def count_members(runtime: Runtime, audiences: list[str]) -> int:
    stmt = select(func.count()).where(audience_members.c.audience_slug.in_(audiences))
    with runtime.source.connect() as conn:
        return int(conn.scalar(stmt) or 0)


def run_backfill(
    runtime: Runtime,
    config: ExportConfig,
    run_key: str,
    send_many: SendMany,
    wait: Wait,
    progress: Progress = lambda fraction, text: None,
) -> Report:
    report = Report(f"Audience backfill `{run_key}`")
    report.must_add_up(
        "members_read",
        "quarantined",
        "skipped_already_sent",
        "skipped_already_quarantined",
        "records_sent",
        "rejected_on_submit",
    )
    if not config.existing_users:
        report.notes.append("existing_users is off: no backfill")
        return report
    check_against_source(runtime, config)
    total = max(1, count_members(runtime, config.audiences))
    planner = backfill.BackfillPlanner(runtime, config, run_key)
    # Jobs an interrupted run recorded but never settled are settled with this run's own.
    job_ids = unsettled(runtime, backfill.KIND)
    for page in prefetched(planner.pages()):
        job_ids += add_sends(report, send_many(page.batches, backfill.KIND))
        planner.commit(page)
        report.add("members_read", page.members_read)
        report.add("quarantined", page.quarantined)
        report.add("skipped_already_sent", page.skipped)
        report.add("skipped_already_quarantined", page.skipped_quarantined)
        progress(min(1.0, planner.members_read() / total), page.audience)
    add_wait(report, wait(job_ids))
    return report


def run_incremental(
    runtime: Runtime,
    config: ExportConfig,
    owner: str,
    send_many: SendMany,
    wait: Wait,
    clock: Callable[[], float] = time.monotonic,
) -> Report:
    """Settle what earlier runs left running, then send what is queued now.

    A backlog larger than one lease is drained lease after lease until the flush interval
    is spent; the next scheduled run carries on from there.
    """
    check_against_source(runtime, config)
    report = Report("Audience incremental")
    report.must_add_up(
        "leased", "coalesced", "not_exported", "quarantined", "records_sent", "rejected_on_submit"
    )
    stop_at = clock() + config.flush_interval_seconds
    add_wait(report, wait(unsettled(runtime, incremental.KIND)))
    while True:
        plan = incremental.plan_incremental(runtime, config, owner, MAX_LEASE)
        for name in ("leased", "coalesced", "not_exported", "quarantined", "early_flushes"):
            report.add(name, getattr(plan, name))
        add_wait(report, wait(add_sends(report, send_many(plan.batches, incremental.KIND))))
        if plan.leased < MAX_LEASE or clock() > stop_at:
            return report
