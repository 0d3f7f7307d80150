"""`make serve` as a person runs it: a fresh PREFECT_HOME, one server, every deployment served,
the interval deployments completing run after run, and one Ctrl-C stopping it all."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest

from attentive_sync.settings import DEMO_API_KEY
from attentive_sync.store import Store
from attentive_sync.store.records import NewDelta

INTERVAL_DEPLOYMENTS = ("audience-incremental", "loyalty-events")
RUNS_EACH = 3
INTERVAL_SECONDS = 8
BAD_STATES = {"CANCELLED", "CRASHED", "FAILED"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _finished_runs(api: str) -> dict[str, list[tuple[str, str]]]:
    """(state type, message) of every finished run, by deployment name."""
    deployments = httpx.post(f"{api}/deployments/filter", json={}, timeout=10).json()
    names = {d["id"]: d["name"] for d in deployments}
    finished = {"flow_runs": {"state": {"type": {"any_": ["COMPLETED", *sorted(BAD_STATES)]}}}}
    runs = httpx.post(f"{api}/flow_runs/filter", json=finished, timeout=10).json()
    out: dict[str, list[tuple[str, str]]] = {}
    for run in runs:
        if run.get("deployment_id") in names:
            state = run["state"]
            out.setdefault(names[run["deployment_id"]], []).append(
                (state["type"], state.get("message") or "")
            )
    return out


@pytest.mark.prefect
def test_serve_completes_runs_on_one_server_and_stops_on_one_ctrl_c(tmp_path, db_url, emulator):
    store = Store.from_url(db_url)
    with store.engine.connect() as conn:
        customer = conn.exec_driver_sql(
            "SELECT customer_id FROM customers WHERE email IS NOT NULL LIMIT 1"
        ).scalar_one()
    store.deltas.enqueue([NewDelta("vip", customer, "enter", datetime.now(timezone.utc))])
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("PREFECT_") and k != "DO_NOT_TRACK"
    }
    env.update(
        PREFECT_HOME=str(tmp_path / "prefect-home"),
        ATTENTIVE_SYNC_DB_URL=db_url,
        ATTENTIVE_BASE_URL=emulator.base_url,
        ATTENTIVE_API_KEY=DEMO_API_KEY,
        ATTENTIVE_SYNC_POLL_INTERVAL_SECONDS="0.2",
        PREFECT_RUNNER_POLL_FREQUENCY="2",
    )
    log = (tmp_path / "serve.log").open("w+")
    serve = subprocess.Popen(
        [str(Path(sys.executable).parent / "attentive-sync"), "serve"]
        + ["--port", str(port), "--interval", str(INTERVAL_SECONDS)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
        start_new_session=True,
    )
    try:
        finished = _wait_for_runs(serve, api, deadline=time.monotonic() + 150)
    finally:
        # What a terminal's Ctrl-C does: SIGINT to the whole foreground process group.
        os.killpg(serve.pid, signal.SIGINT)
        try:
            code = serve.wait(timeout=45)
        except subprocess.TimeoutExpired:
            serve.kill()
            code = None
    log.seek(0)
    output = log.read()
    for name in INTERVAL_DEPLOYMENTS:
        states = [state for state, _ in finished.get(name, [])]
        bad = [(s, m) for s, m in finished.get(name, []) if s in BAD_STATES]
        assert not bad, f"{name}: {bad}\n{output[-3000:]}"
        assert states.count("COMPLETED") >= RUNS_EACH, f"{name}: {states}\n{output[-3000:]}"
    assert "Starting temporary server" not in output, output[-3000:]
    assert code == 0, f"serve did not stop cleanly on one Ctrl-C (exit {code})\n{output[-3000:]}"
    assert "Traceback" not in output, output[-5000:]
    assert not _answers(api), "the Prefect server outlived serve"
    assert store.accepted.for_customers([customer]).get(customer, {})["vip"] is True


def _wait_for_runs(serve: subprocess.Popen, api: str, deadline: float) -> dict:
    finished: dict = {}
    while time.monotonic() < deadline:
        if serve.poll() is not None:
            pytest.fail(f"serve exited early with code {serve.returncode}")
        try:
            finished = _finished_runs(api)
        except httpx.HTTPError:
            time.sleep(1)
            continue
        done = all(
            [s for s, _ in finished.get(n, [])].count("COMPLETED") >= RUNS_EACH
            for n in INTERVAL_DEPLOYMENTS
        )
        bad = any(s in BAD_STATES for runs in finished.values() for s, _ in runs)
        if done or bad:
            break
        time.sleep(1)
    return finished


def _answers(api: str) -> bool:
    try:
        return httpx.get(f"{api}/health", timeout=2).is_success
    except httpx.TransportError:
        return False
