"""``attentive-sync run FLOW --param key=value``: run any flow ad hoc, in this process.

The flows live in the Prefect shell (the top-level ``flows`` package); they are imported
only when a run is asked for, so the rest of the command never loads Prefect.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from attentive_sync.cli._common import console, fail


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
        except ValueError:
            params[key] = raw
    return params


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        fail(f"no such file: {path}", code=2)
    except ValueError as exc:
        fail(f"{path} is not valid JSON: {exc}", code=2)


def run(
    flow_name: str = typer.Argument(..., help="Deployment name, e.g. audience-incremental."),
    param: list[str] = typer.Option([], "--param", "-p", help="key=value (JSON) or key=@file."),
    params_file: Path = typer.Option(None, "--params-file", help="JSON object of parameters."),
) -> None:
    """Run a flow once, now, in this process (results and artifacts go to Prefect)."""
    registry = importlib.import_module("attentive_sync.flows.registry")
    try:
        counts = registry.run_now(flow_name, parse_params(param, params_file))
    except registry.FlowRunError as exc:
        fail(str(exc))
    table = Table(title=flow_name)
    table.add_column("count")
    table.add_column("value", justify="right")
    for name, value in (counts or {}).items():
        table.add_row(name, f"{value:,}")
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("run")(run)
