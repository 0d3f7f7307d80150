"""The emulator on a real socket: what the client and flow integration tests will see."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from attentive_sync.emulator import EmulatorConfig, EmulatorServer

from .conftest import AUTH, user


@pytest.fixture(scope="module")
def server() -> Iterator[EmulatorServer]:
    with EmulatorServer(EmulatorConfig(job_delay=0.05)) as running:
        yield running


def test_bulk_round_trip_over_http(server: EmulatorServer) -> None:
    users = [user(n) for n in range(3)] + [user(3, identifiers={"phone": "5551234"})]
    with httpx.Client(base_url=server.base_url, headers=AUTH, timeout=5) as client:
        submitted = client.post("/v2/bulk/user/attributes", json={"users": users})
        assert submitted.status_code == 202
        job_id = submitted.json()["batchJobId"]
        deadline = time.monotonic() + 5
        while (status := client.get(f"/v2/bulk/job/{job_id}").json())["status"] != "COMPLETED":
            assert time.monotonic() < deadline, status
            time.sleep(0.02)
        assert status["url"].startswith(server.base_url)
        lines = client.get(status["url"]).text.splitlines()
    assert len(lines) == 4
    assert server.state.find_user(clientUserId="customer-2") is not None
    assert server.state.find_user(clientUserId="customer-3") is None


def test_dropped_connection_is_a_transport_error(server: EmulatorServer) -> None:
    server.state.change_faults({"drop_rate": 1.0})
    try:
        with (
            httpx.Client(base_url=server.base_url, headers=AUTH, timeout=5) as client,
            pytest.raises(httpx.TransportError),
        ):
            client.get("/v1/me")
    finally:
        server.state.change_faults({"drop_rate": 0.0})
    assert server.state.stats()["dropped"] == 1
    assert server.state.list_requests(1)[0]["status"] is None


def test_port_zero_picks_a_free_port_and_stop_releases_it() -> None:
    first = EmulatorServer().start()
    url = first.base_url
    assert not url.endswith(":0")
    first.stop()
    with pytest.raises(RuntimeError):
        _ = first.base_url
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{url}/v1/me", timeout=1)
