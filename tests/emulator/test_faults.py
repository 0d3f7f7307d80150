"""Injected faults: 5xx, 429 storms, latency, failed and slow jobs, seeded repeatability."""

from __future__ import annotations

import time
from typing import Any

from .conftest import user


def test_error_rate_one_answers_5xx_without_side_effects(make_emulator: Any) -> None:
    emu = make_emulator(job_delay=0, faults={"error_rate": 1.0})
    response = emu.post("/v2/bulk/user/attributes", json={"users": [user()]})
    assert response.status_code in (500, 502, 503)
    assert response.json()["error"]["message"] == "injected server error"
    assert "x-ratelimit-remaining" in response.headers
    assert emu.state.list_jobs() == []
    assert emu.state.stats()["injected_errors"] == 1


def test_error_rate_is_a_share_and_repeats_with_the_seed(make_emulator: Any) -> None:
    def statuses(seed: int) -> list[int]:
        emu = make_emulator(faults={"error_rate": 0.3}, seed=seed, default_rate_limit=1000)
        return [emu.get("/v1/me").status_code for _ in range(200)]

    first = statuses(7)
    assert first == statuses(7)
    assert first != statuses(8)
    assert 30 <= sum(code >= 500 for code in first) <= 90


def test_counted_storm_refuses_the_next_requests_then_stops(emu: Any) -> None:
    emu.post("/_emulator/faults", json={"storm_requests": 3})
    assert [emu.get("/v1/me").status_code for _ in range(4)] == [429, 429, 429, 200]


def test_timed_storm_lasts_its_duration(emu: Any) -> None:
    emu.post("/_emulator/faults", json={"storm_seconds": 2})
    assert emu.get("/v1/me").status_code == 429
    emu.clock.advance(1.9)
    assert emu.get("/v1/me").status_code == 429
    emu.clock.advance(0.2)
    assert emu.get("/v1/me").status_code == 200


def test_latency_delays_each_answer(make_emulator: Any) -> None:
    emu = make_emulator(faults={"latency_ms": 60})
    started = time.perf_counter()
    assert emu.get("/v1/me").status_code == 200
    assert time.perf_counter() - started >= 0.06


def test_fail_job_rate_one_ends_jobs_failed_and_applies_nothing(make_emulator: Any) -> None:
    emu = make_emulator(job_delay=1.0, faults={"fail_job_rate": 1.0})
    job_id = emu.submit([user(3)])
    emu.clock.advance(1.0)
    body = emu.get(f"/v2/bulk/job/{job_id}").json()
    assert body["status"] == "FAILED"
    assert "url" not in body
    assert emu.get(f"/v2/bulk/job/{job_id}/results.jsonl").status_code == 404
    assert emu.state.find_user(phone="+15550000003") is None


def test_slow_jobs_take_the_slow_delay(make_emulator: Any) -> None:
    emu = make_emulator(job_delay=1.0, faults={"slow_job_rate": 1.0, "slow_job_delay": 3.0})
    job_id = emu.submit([user()])
    emu.clock.advance(2.0)
    assert emu.get(f"/v2/bulk/job/{job_id}").json()["status"] == "IN_PROGRESS"
    emu.clock.advance(1.0)
    assert emu.get(f"/v2/bulk/job/{job_id}").json()["status"] == "COMPLETED"
    assert emu.state.list_jobs()[0]["slow"] is True
