"""Whole runs of the audience export, with their collaborators passed in."""

from __future__ import annotations

import time
from collections.abc import Callable

from attentive_sync.domain.export_config import ExportConfig
from attentive_sync.engine.audience import backfill, diff, incremental
from attentive_sync.engine.checks import check_against_source
from attentive_sync.engine.delivery.collaborators import (
    Progress,
    SendMany,
    SettleBehind,
    Wait,
    add_sends,
    add_wait,
    leases_released_on_failure,
    unsettled,
)
from attentive_sync.engine.gctuning import tuned_gc
from attentive_sync.engine.prefetch import prefetched
from attentive_sync.engine.report import Report, add_dropped_emails
from attentive_sync.engine.runtime import Runtime
from attentive_sync.sources.loyalty import count_customers_in
from attentive_sync.store.queue import MAX_LEASE


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
        "held_back",
    )
    if not config.existing_users:
        report.notes.append("existing_users is off: no backfill")
        return report
    check_against_source(runtime, config)
    total = max(1, count_customers_in(runtime.source, config.audiences))
    planner = backfill.BackfillPlanner(runtime, config, run_key)
    # Jobs an interrupted run recorded but never settled are settled with this run's own.
    job_ids = unsettled(runtime, backfill.KIND)
    with tuned_gc():
        for page in prefetched(planner.pages()):
            job_ids += add_sends(report, send_many(page.batches, backfill.KIND))
            planner.commit(page)
            report.add("members_read", page.members_read)
            report.add("quarantined", page.quarantined)
            add_dropped_emails(report, page.batches)
            report.add("skipped_already_sent", page.skipped)
            report.add("skipped_already_quarantined", page.skipped_quarantined)
            read = planner.members_read()
            progress(min(1.0, read / total), f"{read:,} of {total:,} customers, {page.audience}")
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

    A backlog larger than one lease is drained lease after lease, without waiting for the
    jobs of one lease before taking the next (a customer with a job in flight is not
    leased again, so order holds), until the queue is empty or the flush interval is
    spent. The jobs of earlier leases are settled behind the sends, on a thread of their
    own (``SettleBehind``); the rest once the last lease is sent. The next scheduled run
    carries on.
    """
    check_against_source(runtime, config)
    report = Report("Audience incremental")
    report.must_add_up(
        "leased",
        "coalesced",
        "not_exported",
        "quarantined",
        "records_sent",
        "rejected_on_submit",
        "held_back",
    )
    stop_at = clock() + config.flush_interval_seconds
    if config.changes_from != "queue":
        diff.add_to(report, diff.queue_membership_changes(runtime, config))
    with leases_released_on_failure(runtime, owner), tuned_gc():
        add_wait(report, wait(unsettled(runtime)))
        behind = SettleBehind(wait)
        try:
            while True:
                plan = incremental.plan_incremental(runtime, config, owner, MAX_LEASE)
                for name in ("leased", "coalesced", "not_exported", "quarantined", "early_flushes"):
                    report.add(name, getattr(plan, name))
                add_dropped_emails(report, plan.batches)
                behind.add(add_sends(report, send_many(plan.batches, incremental.KIND)))
                if plan.leased < MAX_LEASE or clock() > stop_at:
                    break
        except BaseException:
            behind.abandon()
            raise
        add_wait(report, behind.finish())
    return report
