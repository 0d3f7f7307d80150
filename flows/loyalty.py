"""The loyalty events relay, every 30 seconds: queued events to Attentive custom events; and
the events derived from the program's tables, every few minutes."""

from __future__ import annotations

from prefect import flow
from prefect.runtime import flow_run

from attentive_sync.domain.export_config import ExportConfig
from attentive_sync.engine.checks import ConfigurationError
from attentive_sync.engine.derived.run import check_source, run_loyalty_changes
from attentive_sync.engine.loyalty.relay import EventsConfig, run_relay
from attentive_sync.engine.notices.delivery import Collaborators
from attentive_sync.engine.runtime import shared_runtime
from attentive_sync.flows._preflight import PreflightError, preflight, stopped
from attentive_sync.flows._shell import prefect_deliverer, prefect_sender, publish, thread_pool
from attentive_sync.flows.wait import prefect_waiter


@flow(name="loyalty-events", task_runner=thread_pool(4))
def loyalty_events(
    config: ExportConfig,
    events: EventsConfig | None = None,
    wait_seconds: float = 20.0,
    poll_interval_seconds: float = 1.0,
) -> dict[str, int]:
    """Relay queued loyalty events (All or Some) and keep loyalty profile attributes current.

    Args:
        config: How customer fields map to Attentive's identifiers (and the audiences).
        events: Program name, which events to send (All or Some), stale events, concurrency.
        wait_seconds: How long to wait for the profile bulk jobs to finish before the run ends.
        poll_interval_seconds: Seconds between job status reads while waiting.
    """
    try:
        preflight(config)
    except PreflightError as exc:
        return stopped(exc)
    events = events or EventsConfig()
    owner = f"loyalty-events:{flow_run.get_id()}"
    collaborators = _relay_collaborators(owner, events, wait_seconds, poll_interval_seconds)
    report = run_relay(shared_runtime(), config, events, owner, collaborators)
    return publish(report, "loyalty-events-report")


@flow(name="loyalty-changes", task_runner=thread_pool(4))
def loyalty_changes(
    config: ExportConfig,
    events: EventsConfig | None = None,
    send_current_state: bool = False,
    wait_seconds: float = 20.0,
    poll_interval_seconds: float = 1.0,
) -> dict[str, int]:
    """Derive loyalty events from the program's tables (tier, segment, reward, approaching
    tier, new ledger rows and referrals) and relay them, for programs that opt in with
    ``program_settings.derived_events_enabled``.

    Args:
        config: How customer fields map to Attentive's identifiers (and the audiences).
        events: Program name, which events to send (All or Some), stale events, concurrency.
        send_current_state: On the first run only: send every customer's current state as
            new (segment moves, available rewards, approaching tiers) instead of recording
            it silently as the baseline.
        wait_seconds: How long to wait for the profile bulk jobs to finish before the run ends.
        poll_interval_seconds: Seconds between job status reads while waiting.
    """
    try:
        preflight(config)
        check_source(shared_runtime())
    except ConfigurationError as exc:
        return stopped(PreflightError(str(exc)))
    except PreflightError as exc:
        return stopped(exc)
    events = events or EventsConfig()
    owner = f"loyalty-changes:{flow_run.get_id()}"
    collaborators = _relay_collaborators(owner, events, wait_seconds, poll_interval_seconds)
    try:
        report = run_loyalty_changes(
            shared_runtime(),
            config,
            events,
            owner,
            collaborators,
            send_current_state=send_current_state,
        )
    except ConfigurationError as exc:  # e.g. program_settings lost its row meanwhile
        return stopped(PreflightError(str(exc)))
    return publish(report, "loyalty-changes-report")


def _relay_collaborators(
    owner: str, events: EventsConfig, wait: float, poll: float
) -> Collaborators:
    """Events sent as Prefect tasks, profile bulk sends and the wait subflow, for ``owner``."""
    return (
        prefect_deliverer(events.concurrency),
        prefect_sender(owner),
        prefect_waiter(owner, wait, poll),
    )
