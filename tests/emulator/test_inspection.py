"""The /_emulator/ inspection API."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from anyio.from_thread import BlockingPortal

from .conftest import user


def test_users_list_filters_and_pages(make_emulator: Any) -> None:
    emu = make_emulator(job_delay=0)
    emu.submit([user(n) for n in range(5)])
    everyone = emu.get("/_emulator/users", params={"limit": 2, "offset": 1}).json()
    assert everyone["total"] == 5
    assert [u["identifiers"]["clientUserId"] for u in everyone["users"]] == [
        "customer-1",
        "customer-2",
    ]
    by_phone = emu.get("/_emulator/users", params={"phone": "+15550000003"}).json()
    assert [u["identifiers"]["clientUserId"] for u in by_phone["users"]] == ["customer-3"]
    both = {"phone": "+15550000003", "clientUserId": "customer-4"}
    assert emu.get("/_emulator/users", params=both).json()["total"] == 0
    assert emu.get("/_emulator/users", params={"email": "no@example.com"}).json()["total"] == 0


@pytest.mark.parametrize("params", [{"limit": "x"}, {"limit": "5000"}, {"offset": "-1"}])
def test_bad_paging_is_a_clear_400(emu: Any, params: dict[str, str]) -> None:
    response = emu.get("/_emulator/users", params=params)
    assert response.status_code == 400
    assert "whole number" in response.json()["error"]["message"]


def test_jobs_list_shows_lifecycle_and_counts(make_emulator: Any) -> None:
    emu = make_emulator(job_delay=0)
    job_id = emu.submit([user(1), user(2, identifiers={"phone": "5551234"})])
    (job,) = emu.get("/_emulator/jobs").json()["jobs"]
    assert job["bulkJobId"] == job_id
    assert (job["status"], job["totalRecords"], job["accepted"], job["rejected"]) == (
        "COMPLETED",
        2,
        1,
        1,
    )


def test_request_log_keeps_paths_and_key_suffixes_only(emu: Any) -> None:
    emu.get("/v1/attributes/custom", params={"phone": "+15550000001"})
    emu.get("/v1/me", headers={"Authorization": "Bearer secret-key-1234"})
    first, second = emu.get("/_emulator/requests").json()["requests"]
    assert first["path"] == "/v1/attributes/custom"
    assert first["status"] == 404
    assert first["key"] == "...opes"
    assert (second["status"], second["key"]) == (401, "...1234")
    assert emu.get("/_emulator/requests", params={"limit": 1}).json()["requests"] == [second]


def test_stats_count_requests_by_endpoint_and_status(emu: Any) -> None:
    emu.get("/v1/me")
    emu.get("/v1/me", headers={})
    emu.post("/_emulator/faults", json={"storm_requests": 1})
    emu.get("/v2/me")
    stats = emu.get("/_emulator/stats").json()
    assert stats["by_endpoint"] == {"me_v1": {"200": 1, "401": 1}, "me_v2": {"429": 1}}
    assert (stats["requests"], stats["throttled"]) == (3, 1)


def test_faults_can_be_read_and_changed_at_run_time(emu: Any) -> None:
    assert emu.get("/_emulator/faults").json()["error_rate"] == 0.0
    changed = emu.post("/_emulator/faults", json={"error_rate": 1.0, "latency_ms": 0}).json()
    assert changed["error_rate"] == 1.0
    assert emu.get("/v1/me").status_code >= 500


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"error_rate": 2}, "error_rate"),
        ({"nonsense": 1}, "nonsense"),
        ({"storm_requests": -1}, "storm_requests"),
        ([1], "JSON object"),
    ],
)
def test_bad_fault_changes_are_refused_and_change_nothing(
    emu: Any, body: Any, expected: str
) -> None:
    before = emu.get("/_emulator/faults").json()
    response = emu.post("/_emulator/faults", json=body)
    assert response.status_code == 400
    assert expected in response.json()["error"]["message"]
    assert emu.get("/_emulator/faults").json() == before


def test_reset_forgets_everything(make_emulator: Any) -> None:
    emu = make_emulator(job_delay=0)
    emu.submit([user()])
    emu.post("/_emulator/faults", json={"error_rate": 1.0})
    assert emu.post("/_emulator/reset").json() == {"reset": True}
    stats = emu.get("/_emulator/stats").json()
    assert (stats["users"], stats["requests"], stats["jobs"]) == (0, 0, {})
    assert emu.get("/_emulator/faults").json()["error_rate"] == 0.0


def test_inspection_refuses_non_loopback_peers(emu: Any, portal: BlockingPortal) -> None:
    async def from_afar() -> httpx.Response:
        transport = httpx.ASGITransport(app=emu.app, client=("10.1.2.3", 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://e.test") as client:
            return await client.get("/_emulator/users")

    response = portal.call(from_afar)
    assert response.status_code == 403
    assert "loopback" in response.json()["error"]["message"]
    assert emu.get("/_emulator/users").status_code == 200
