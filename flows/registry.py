"""Every flow by its deployment name, and the deployments as ``prefect.yaml`` declares them.

``prefect.yaml`` is the one place deployments are described: `prefect deploy` reads it,
and so do the serve script and `attentive-sync run` (for default parameters).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeAlias, cast, get_type_hints

import yaml
from prefect import Flow
from prefect.deployments.runner import RunnerDeployment
from prefect.states import State
from pydantic import TypeAdapter, ValidationError

from attentive_sync.engine.checks import ConfigurationError
from attentive_sync.engine.derived.run import check_source
from attentive_sync.engine.runtime import Runtime
from attentive_sync.flows._preflight import PreflightError, one_line, preflight
from attentive_sync.flows.audience import audience_backfill, audience_incremental
from attentive_sync.flows.loyalty import loyalty_changes, loyalty_events
from attentive_sync.flows.notices import expiry_notice, reward_reminder

# Shipped inside the package (attentive_sync.deployments), so an installed copy has it too.
PREFECT_YAML = Path(__file__).resolve().parents[1] / "deployments" / "prefect.yaml"

# Every flow takes keyword parameters and returns its report's counts.
FlowOfCounts: TypeAlias = Flow[..., dict[str, int]]

FLOWS: dict[str, FlowOfCounts] = {
    "audience-backfill": audience_backfill,
    "audience-incremental": audience_incremental,
    "loyalty-events": loyalty_events,
    "loyalty-changes": loyalty_changes,
    "reward-reminder": reward_reminder,
    "expiry-notice": expiry_notice,
}


# Checks beyond the shared preflight, for the flows that need them (the flow repeats them).
CHECKS: dict[str, Callable[[Runtime], None]] = {"loyalty-changes": check_source}


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
    out: list[RunnerDeployment] = []
    for name, spec in deployment_specs().items():
        schedule = dict((spec.get("schedules") or [{}])[0])
        if interval_seconds and schedule.get("interval"):
            schedule["interval"] = interval_seconds
        deployment = FLOWS[name].to_deployment(
            name=name,
            description=spec.get("description"),
            parameters=spec.get("parameters") or {},
            interval=schedule.get("interval"),
            cron=schedule.get("cron"),
            concurrency_limit=spec.get("concurrency_limit"),
        )
        # Called outside an event loop: the sync/async dispatch returns the deployment itself.
        out.append(cast(RunnerDeployment, deployment))
    return out


class FlowRunError(Exception):
    """An ad-hoc run that could not start or did not complete; the message says why."""


def prepare(name: str, overrides: dict[str, Any]) -> tuple[FlowOfCounts, dict[str, Any]]:
    """The flow and its checked parameters: prefect.yaml's defaults plus ``overrides``.

    Mistakes a person can fix (an unknown or ill-typed parameter, a store that does not open,
    a configuration that does not fit the data, a key Attentive refuses) come back as one
    ``FlowRunError`` line before anything runs, instead of a traceback.
    """
    if name not in FLOWS:
        raise FlowRunError(f"unknown flow {name!r}; choose from: {', '.join(FLOWS)}")
    flow = FLOWS[name]
    params = validate_parameters(flow, {**default_parameters(name), **overrides})
    try:
        runtime = preflight(params["config"], log=False)
        if name in CHECKS:
            CHECKS[name](runtime)
    except (PreflightError, ConfigurationError) as exc:
        raise FlowRunError(str(exc)) from exc
    return flow, params


def execute(flow: FlowOfCounts, params: dict[str, Any]) -> dict[str, int]:
    """Run a prepared flow in this process; a run that does not complete is a FlowRunError."""
    # Flow[..., R] accepts any keyword, so mypy picks the overload without ``return_state``.
    state = cast("State[dict[str, int]]", flow(**params, return_state=True))
    if not state.is_completed():
        raise FlowRunError(f"{flow.name} ended {state.name}: {state.message}")
    return state.result()


def run_now(name: str, overrides: dict[str, Any]) -> dict[str, int]:
    """``prepare`` then ``execute``."""
    return execute(*prepare(name, overrides))


def validate_parameters(flow: FlowOfCounts, params: dict[str, Any]) -> dict[str, Any]:
    """Each parameter checked against the flow's signature, the first problem as one line."""
    signature = inspect.signature(flow.fn)
    unknown = sorted(set(params) - set(signature.parameters))
    if unknown:
        raise FlowRunError(
            f"{flow.name} has no parameter {', '.join(unknown)}; "
            f"it takes: {', '.join(signature.parameters)}"
        )
    hints = get_type_hints(flow.fn, include_extras=True)
    validated = {}
    for key, value in params.items():
        try:
            validated[key] = TypeAdapter(hints[key]).validate_python(value)
        except ValidationError as exc:
            raise FlowRunError(f"parameter {key}: {one_line(exc)}") from exc
    missing = [
        key
        for key, p in signature.parameters.items()
        if p.default is inspect.Parameter.empty and key not in validated
    ]
    if missing:
        raise FlowRunError(f"{flow.name} needs parameter {', '.join(missing)}")
    return validated
