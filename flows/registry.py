"""Every flow by its deployment name, and the deployments as ``prefect.yaml`` declares them.

``prefect.yaml`` is the one place deployments are described: `prefect deploy` reads it,
and so do the serve script and `attentive-sync run` (for default parameters).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from prefect import Flow
from prefect.deployments.runner import RunnerDeployment
from prefect.exceptions import ParameterTypeError

from attentive_sync.flows.audience import audience_backfill, audience_incremental
from attentive_sync.flows.loyalty import loyalty_events
from attentive_sync.flows.notices import expiry_notice, reward_reminder
from attentive_sync.settings import AttentiveSettings, SyncSettings
from attentive_sync.store import Store
from attentive_sync.store.errors import StoreError

# Shipped inside the package (attentive_sync.deployments), so an installed copy has it too.
PREFECT_YAML = Path(__file__).resolve().parents[1] / "deployments" / "prefect.yaml"

FLOWS: dict[str, Flow] = {
    "audience-backfill": audience_backfill,
    "audience-incremental": audience_incremental,
    "loyalty-events": loyalty_events,
    "reward-reminder": reward_reminder,
    "expiry-notice": expiry_notice,
}


def deployment_specs(path: Path = PREFECT_YAML) -> dict[str, dict[str, Any]]:
    """The deployments of ``prefect.yaml`` by name (YAML anchors already resolved)."""
    document = yaml.safe_load(path.read_text())
    return {spec["name"]: spec for spec in document.get("deployments", [])}


def default_parameters(name: str) -> dict[str, Any]:
    return dict(deployment_specs().get(name, {}).get("parameters") or {})


def runner_deployments(interval_seconds: float | None = None) -> list[RunnerDeployment]:
    """The deployments of ``prefect.yaml`` for ``prefect.serve``: same names, schedules, limits.

    ``interval_seconds`` replaces the interval of the interval schedules (30 s by default).
    """
    out = []
    for name, spec in deployment_specs().items():
        schedule = dict((spec.get("schedules") or [{}])[0])
        if interval_seconds and schedule.get("interval"):
            schedule["interval"] = interval_seconds
        out.append(
            FLOWS[name].to_deployment(
                name=name,
                description=spec.get("description"),
                parameters=spec.get("parameters") or {},
                interval=schedule.get("interval"),
                cron=schedule.get("cron"),
                concurrency_limit=spec.get("concurrency_limit"),
            )
        )
    return out


class FlowRunError(Exception):
    """An ad-hoc run that could not start or did not complete; the message says why."""


def run_now(name: str, overrides: dict[str, Any]) -> dict[str, int]:
    """Run one flow in this process with prefect.yaml's parameters plus ``overrides``.

    Mistakes a person can fix (bad parameters, an uninitialised store, no API key) come back
    as one ``FlowRunError`` line instead of a traceback.
    """
    if name not in FLOWS:
        raise FlowRunError(f"unknown flow {name!r}; choose from: {', '.join(FLOWS)}")
    flow = FLOWS[name]
    try:
        params = flow.validate_parameters({**default_parameters(name), **overrides})
    except ParameterTypeError as exc:
        raise FlowRunError(str(exc)) from exc
    _preflight()
    state = flow(**params, return_state=True)
    if not state.is_completed():
        raise FlowRunError(f"{name} ended {state.name}: {state.message}")
    return state.result()


def _preflight() -> None:
    try:
        Store.from_url(SyncSettings().db_url).check_schema()
    except StoreError as exc:
        raise FlowRunError(str(exc)) from exc
    if AttentiveSettings().api_key is None:
        raise FlowRunError("no Attentive API key: set ATTENTIVE_API_KEY")
