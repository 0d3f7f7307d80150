"""`attentive-sync run`: user mistakes are one clear line and exit code 1, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from attentive_sync.cli import app
from attentive_sync.cli.run_cmds import parse_params

runner = CliRunner()


def invoke(*args: str, env: dict[str, str]):
    return runner.invoke(app, ["run", *args], env=env)


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    return {"ATTENTIVE_SYNC_DB_URL": f"sqlite:///{tmp_path / 'state.db'}", "ATTENTIVE_API_KEY": ""}


def test_unknown_flow(env):
    result = invoke("nope", env=env)
    assert result.exit_code == 1 and "unknown flow 'nope'" in result.output
    assert "Traceback" not in result.output
    assert "choose from: audience-backfill, audience-incremental, loyalty-events" in result.output


def test_an_unknown_flow_is_answered_without_loading_prefect(env):
    """A misspelt name is answered from prefect.yaml, before Prefect's import (seconds)."""
    probe = (
        "import sys; from typer.testing import CliRunner; from attentive_sync.cli import app;"
        "r = CliRunner().invoke(app, ['run', 'nope']);"
        "print(r.exit_code, 'prefect' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=os.environ | env
    )
    assert out.stdout.split() == ["1", "False"], out.stdout + out.stderr


def test_uninitialised_store(env):
    result = invoke("audience-incremental", env=env)
    assert result.exit_code == 1 and "attentive-sync db init" in result.output


def test_invalid_parameters_named(env):
    result = invoke("audience-backfill", "-p", 'config={"audiences": ["bad slug!"]}', env=env)
    assert result.exit_code == 1 and "audience slugs" in result.output


def test_params_parse_json_text_and_files(tmp_path):
    path = tmp_path / "config.json"
    path.write_text('{"audiences": ["vip"]}')
    assert parse_params(["n=3", "name=spring", f"config=@{path}"], None) == {
        "n": 3,
        "name": "spring",
        "config": {"audiences": ["vip"]},
    }
