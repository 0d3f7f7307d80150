"""``attentive-sync emulator``: argument checks and the configuration it starts with."""

from __future__ import annotations

from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from attentive_sync.cli import emulator_cmd
from attentive_sync.emulator import ALL_SCOPES, EmulatorConfig
from attentive_sync.settings import DEMO_API_KEY


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[tuple[EmulatorConfig, str, int]]:
    """Record what the command would serve instead of blocking on a server."""
    calls: list[tuple[EmulatorConfig, str, int]] = []
    monkeypatch.setattr(
        emulator_cmd, "serve", lambda config, host, port: calls.append((config, host, port))
    )
    return calls


def run(*args: str) -> Any:
    app = typer.Typer()
    emulator_cmd.register(app)
    app.callback()(lambda: None)
    return CliRunner().invoke(app, ["emulator", *args])


def test_default_is_the_demo_key_with_every_scope(started: list[Any]) -> None:
    result = run()
    assert result.exit_code == 0, result.output
    config, host, port = started[0]
    assert (host, port) == ("127.0.0.1", 8085)
    assert config.keys == {DEMO_API_KEY: ALL_SCOPES}
    assert "demo API key" in result.output


def test_keys_faults_and_limits_reach_the_config(started: list[Any]) -> None:
    result = run(
        "--api-key",
        "k-secret-1=attributes:write,subscriptions:write",
        "--api-key",
        "k-secret-2=",
        "--error-rate",
        "0.1",
        "--drop-rate",
        "0.2",
        "--lose-response-rate",
        "0.05",
        "--job-delay",
        "0",
        "--bulk-rate-limit",
        "10",
        "--seed",
        "3",
        "--retry-after",
        "--port",
        "0",
    )
    assert result.exit_code == 0, result.output
    config = started[0][0]
    assert config.keys == {
        "k-secret-1": frozenset({"attributes:write", "subscriptions:write"}),
        "k-secret-2": frozenset(),
    }
    assert (config.faults.error_rate, config.faults.drop_rate, config.job_delay) == (0.1, 0.2, 0)
    assert config.faults.lose_response_rate == 0.05
    assert (config.bulk_rate_limit, config.job_status_rate_limit, config.seed) == (10, 10, 3)
    assert config.send_retry_after is True
    assert "k-secret" not in result.output


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--api-key", "no-equals-sign"], "KEY=SCOPE,SCOPE"),
        (["--api-key", "=events:write"], "KEY=SCOPE,SCOPE"),
        (["--api-key", "k=events:read"], "unknown scope(s) events:read"),
        (["--api-key", "k=", "--api-key", "k=events:write"], "twice"),
        (["--error-rate", "1.5"], "--error-rate"),
        (["--host", "0.0.0.0"], "--allow-remote"),
    ],
)
def test_user_mistakes_are_one_line_exit_2(
    started: list[Any], args: list[str], expected: str
) -> None:
    result = run(*args)
    assert result.exit_code == 2
    assert expected in result.output
    assert "Traceback" not in result.output
    assert started == []


def test_remote_host_is_allowed_when_asked(started: list[Any]) -> None:
    assert run("--host", "0.0.0.0", "--allow-remote").exit_code == 0
    assert started[0][1] == "0.0.0.0"


def test_busy_port_is_a_clear_error() -> None:
    import socket

    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        result = run("--port", str(port))
    assert result.exit_code == 1
    assert "cannot listen" in result.output
