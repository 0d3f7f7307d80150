"""The lost-response fault: Attentive took the request, the client never hears about it.

These run on a real socket, because only there does a dropped connection look like what a
client sees in production: a transport error, with no status code to go by.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from attentive_sync.emulator import EmulatorConfig, EmulatorServer, FaultSettings

from .conftest import AUTH, user

EVENT = {
    "type": "Tier Upgraded",
    "user": {"phone": "+15550000001"},
    "properties": {"tier": "gold"},
    "externalEventId": "evt-lost-1",
    "occurredAt": "2024-05-01T10:00:00Z",
}


@pytest.fixture
def server() -> Iterator[EmulatorServer]:
    config = EmulatorConfig(job_delay=0.05, faults=FaultSettings(lose_response_rate=1.0))
    with EmulatorServer(config) as running:
        yield running


@pytest.fixture
def client(server: EmulatorServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, headers=AUTH, timeout=5) as http:
        yield http


def _wait_finished(server: EmulatorServer) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 5
    while True:
        jobs = server.state.list_jobs()
        if jobs and all(job["finishedAt"] is not None for job in jobs):
            return jobs
        assert time.monotonic() < deadline, jobs
        time.sleep(0.02)


def test_lost_bulk_submit_answer_still_creates_a_job_that_applies(
    server: EmulatorServer, client: httpx.Client
) -> None:
    with pytest.raises(httpx.TransportError):
        client.post("/v2/bulk/user/attributes", json={"users": [user(7)]})
    (job,) = _wait_finished(server)
    assert (job["status"], job["accepted"], job["rejected"]) == ("COMPLETED", 1, 0)
    applied = server.state.find_user(clientUserId="customer-7")
    assert applied is not None
    assert applied["attributes"]["custom"] == {"vip": True}
    stats = server.state.stats()
    assert (stats["lost_responses"], stats["dropped"]) == (1, 1)
    assert stats["by_endpoint"]["bulk_user_attributes"] == {"lost_response": 1}
    assert server.state.list_requests(1)[0]["status"] is None


def test_a_retry_after_a_lost_answer_makes_a_second_job(
    server: EmulatorServer, client: httpx.Client
) -> None:
    """What a client that retries on transport errors leaves at Attentive: two jobs."""
    for _ in range(2):
        with pytest.raises(httpx.TransportError):
            client.post("/v2/bulk/user/attributes", json={"users": [user(8)]})
    jobs = _wait_finished(server)
    assert [job["status"] for job in jobs] == ["COMPLETED", "COMPLETED"]


def test_lost_custom_event_answer_still_stores_the_event(
    server: EmulatorServer, client: httpx.Client
) -> None:
    with pytest.raises(httpx.TransportError):
        client.post("/v1/events/custom", json=EVENT)
    listing = server.state.list_events()
    assert listing["total"] == 1
    assert listing["events"][0]["externalEventId"] == "evt-lost-1"
    server.state.change_faults({"lose_response_rate": 0.0})
    assert client.post("/v1/events/custom", json=EVENT).status_code == 200
    listing = server.state.list_events()
    assert (listing["total"], listing["duplicates"]) == (1, 1)
    assert listing["events"][0]["deliveries"] == 2


def test_refused_requests_and_other_endpoints_are_answered(
    server: EmulatorServer, client: httpx.Client
) -> None:
    """Only a request that took effect can lose its answer; reads are never lost."""
    refused = client.post("/v1/events/custom", json={**EVENT, "type": "Tier|Upgraded"})
    assert refused.status_code == 400
    assert client.get("/v1/me").status_code == 200
    assert server.state.stats()["lost_responses"] == 0


def test_lost_responses_are_a_share_and_repeat_with_the_seed() -> None:
    def lost(seed: int) -> list[bool]:
        faults = FaultSettings(lose_response_rate=0.3)
        config = EmulatorConfig(faults=faults, seed=seed, default_rate_limit=1000)
        outcomes = []
        with (
            EmulatorServer(config) as running,
            httpx.Client(base_url=running.base_url, headers=AUTH, timeout=5) as http,
        ):
            for n in range(60):
                body = {**EVENT, "externalEventId": f"evt-{n}"}
                try:
                    outcomes.append(http.post("/v1/events/custom", json=body).status_code != 200)
                except httpx.TransportError:
                    outcomes.append(True)
            assert running.state.list_events()["total"] == 60
            assert running.state.stats()["lost_responses"] == sum(outcomes)
        return outcomes

    first = lost(5)
    assert first == lost(5)
    assert 5 <= sum(first) <= 35


def test_lose_response_rate_is_steered_through_the_inspection_api(emu: Any) -> None:
    assert emu.get("/_emulator/faults").json()["lose_response_rate"] == 0.0
    changed = emu.post("/_emulator/faults", json={"lose_response_rate": 0.25}).json()
    assert changed["lose_response_rate"] == 0.25
    refused = emu.post("/_emulator/faults", json={"lose_response_rate": 1.5})
    assert refused.status_code == 400
    assert emu.get("/_emulator/faults").json()["lose_response_rate"] == 0.25
