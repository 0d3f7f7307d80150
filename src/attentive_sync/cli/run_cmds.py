"""``attentive-sync run FLOW --param key=value``: run any flow ad hoc, in this process;
``attentive-sync serve``: a Prefect server and every deployment on its schedule.

The flows live in the Prefect shell (``attentive_sync.flows``, kept outside the core); they
are imported only when a run is asked for, so the rest of the command never loads Prefect.
"""

from __future__ import annotations

import importlib
import json
import os
from importlib import resources
from pathlib import Path
from typing import Any

import typer
import yaml
from rich.table import Table

from attentive_sync.cli._common import console, err_console, fail

TEMPORARY_SERVER_NOTE = (
    "note: PREFECT_API_URL is not set: this run and its artifacts go to a temporary Prefect "
    "server that stops with this command (README: 'Keeping runs')."
)


def parse_params(pairs: list[str], params_file: Path | None) -> dict[str, Any]:
    """``key=value`` pairs; a value that parses as JSON is taken as JSON, else as text.

    ``key=@file.json`` reads the value from a JSON file.
    """
    params: dict[str, Any] = {}
    if params_file is not None:
        params.update(_load_json(params_file))
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            fail(f"--param takes key=value, got {pair!r}", code=2)
        if raw.startswith("@"):
            params[key] = _load_json(Path(raw[1:]))
            continue
        try:
            params[key] = json.loads(raw)
        except ValueError as exc:
            if raw.lstrip()[:1] in ("{", "["):
                fail(f"--param {key}: the value is not JSON ({exc}); or use {key}=@file.json", 2)
            params[key] = raw
    return params


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        fail(f"no such file: {path}", code=2)
    except ValueError as exc:
        fail(f"{path} is not valid JSON: {exc}", code=2)


def deployment_names() -> list[str]:
    """The deployments ``prefect.yaml`` declares, read without loading Prefect: a misspelt
    flow name is answered at once, not after Prefect's import."""
    document = resources.files("attentive_sync.deployments").joinpath("prefect.yaml").read_text()
    return [spec["name"] for spec in yaml.safe_load(document).get("deployments", [])]


def run(
    flow_name: str = typer.Argument(..., help="Deployment name, e.g. audience-incremental."),
    param: list[str] = typer.Option([], "--param", "-p", help="key=value (JSON) or key=@file."),
    params_file: Path = typer.Option(None, "--params-file", help="JSON object of parameters."),
) -> None:
    """Run a flow once, now, in this process (results and artifacts go to Prefect)."""
    params = parse_params(param, params_file)
    if flow_name not in (names := deployment_names()):
        fail(f"unknown flow {flow_name!r}; choose from: {', '.join(names)}")
    registry = importlib.import_module("attentive_sync.flows.registry")
    try:
        prepared = registry.prepare(flow_name, params)
        if not os.environ.get("PREFECT_API_URL"):
            err_console.print(TEMPORARY_SERVER_NOTE, highlight=False, soft_wrap=True)
        counts = registry.execute(*prepared)
    except registry.FlowRunError as exc:
        fail(str(exc))
    table = Table(title=flow_name)
    table.add_column("count")
    table.add_column("value", justify="right")
    for name, value in (counts or {}).items():
        table.add_row(name, f"{value:,}")
    console.print(table)


def serve(
    port: int = typer.Option(4200, envvar="PREFECT_SERVER_API_PORT", help="Prefect server port."),
    interval: float = typer.Option(
        None, help="Seconds between runs of the 30-second deployments (default: prefect.yaml)."
    ),
) -> None:
    """Start a Prefect server (UI and API) and serve every deployment on its schedule.

    With PREFECT_API_URL set, serve to that server instead. Ctrl-C stops everything.
    """
    importlib.import_module("attentive_sync.deployments.serve").main(port, interval)


def register(app: typer.Typer) -> None:
    app.command("run")(run)
    app.command("serve")(serve)
