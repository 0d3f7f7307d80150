"""The computed notices: the monthly reward reminder and the daily points-expiry notice."""

from __future__ import annotations

from datetime import datetime, timezone

from prefect import flow
from prefect.runtime import flow_run

from attentive_sync.domain.export_config import ExportConfig
from attentive_sync.engine.loyalty.relay import EventsConfig
from attentive_sync.engine.notices.delivery import (
    Collaborators,
    run_expiry_notice,
    run_reward_reminder,
)
from attentive_sync.engine.runtime import shared_runtime
from attentive_sync.flows._params import Day, Moment
from attentive_sync.flows._preflight import PreflightError, preflight, stopped
from attentive_sync.flows._shell import prefect_deliverer, prefect_sender, publish, thread_pool
from attentive_sync.flows.wait import prefect_waiter


def _collaborators(events: EventsConfig, owner: str, wait_seconds: float) -> Collaborators:
    return (
        prefect_deliverer(events.concurrency),
        prefect_sender(owner),
        prefect_waiter(owner, wait_seconds, 1.0),
    )


@flow(name="reward-reminder", task_runner=thread_pool(8))
def reward_reminder(
    config: ExportConfig,
    events: EventsConfig | None = None,
    as_of: Moment | None = None,
    wait_seconds: float = 60.0,
) -> dict[str, int]:
    """Remind customers of their available rewards for the interval last completed at ``as_of``
    (default now). Re-running for the same interval sends nothing twice.

    Args:
        config: How customer fields map to Attentive's identifiers (and the audiences).
        events: Program name, which events to send (All or Some), stale events, concurrency.
        as_of: Send for the interval last completed at this moment (default now); a plain
            date means midnight UTC.
        wait_seconds: How long to wait for the profile bulk jobs to finish before the run ends.
    """
    try:
        preflight(config)
    except PreflightError as exc:
        return stopped(exc)
    events = events or EventsConfig()
    owner = f"reward-reminder:{flow_run.get_id()}"
    moment = as_of or datetime.now(timezone.utc)
    report = run_reward_reminder(
        shared_runtime(), config, events, moment, _collaborators(events, owner, wait_seconds), owner
    )
    return publish(report, "reward-reminder-report")


@flow(name="expiry-notice", task_runner=thread_pool(8))
def expiry_notice(
    config: ExportConfig,
    events: EventsConfig | None = None,
    as_of: Day | None = None,
    wait_seconds: float = 60.0,
) -> dict[str, int]:
    """Tell customers whose points expire within the notice period.

    Args:
        config: How customer fields map to Attentive's identifiers (and the audiences).
        events: Program name, which events to send (All or Some), stale events, concurrency.
        as_of: The day to compute the notice for (default today, UTC); a moment counts as its
            UTC date.
        wait_seconds: How long to wait for the profile bulk jobs to finish before the run ends.
    """
    try:
        preflight(config)
    except PreflightError as exc:
        return stopped(exc)
    events = events or EventsConfig()
    owner = f"expiry-notice:{flow_run.get_id()}"
    day = as_of or datetime.now(timezone.utc).date()
    report = run_expiry_notice(
        shared_runtime(), config, events, day, _collaborators(events, owner, wait_seconds), owner
    )
    return publish(report, "expiry-notice-report")
