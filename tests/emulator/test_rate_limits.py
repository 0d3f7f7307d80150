"""Rate limits per key and endpoint, with headers on every answer."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from attentive_sync.emulator import ManualClock
from attentive_sync.emulator.ratelimit import SlidingWindowLimiter

from .conftest import user


def test_101_bulk_requests_in_one_second_meet_a_429_with_headers(emu: Any) -> None:
    answers = []
    for _ in range(101):
        answers.append(emu.post("/v2/bulk/user/attributes", json={"users": [user()]}))
        emu.clock.advance(0.005)
    assert [a.status_code for a in answers[:100]] == [202] * 100
    last = answers[100]
    assert last.status_code == 429
    assert last.headers["x-ratelimit-limit"] == "100"
    assert last.headers["x-ratelimit-remaining"] == "0"
    assert "retry-after" not in last.headers
    assert "rate limit" in last.json()["error"]["message"]
    assert [a.headers["x-ratelimit-remaining"] for a in answers[:3]] == ["99", "98", "97"]
    assert emu.state.stats()["throttled"] == 1


def test_window_slides_rather_than_resetting_on_the_second(emu: Any) -> None:
    emu.clock.advance(0.9)
    for _ in range(100):
        assert emu.get("/v2/bulk/job/x").status_code == 404
    emu.clock.advance(0.2)
    assert emu.get("/v2/bulk/job/x").status_code == 429
    emu.clock.advance(0.81)
    assert emu.get("/v2/bulk/job/x").status_code == 404


def test_limits_are_per_key_and_per_endpoint(make_emulator: Any) -> None:
    emu = make_emulator(keys={"a": frozenset(), "b": frozenset()}, default_rate_limit=2)
    a, b = {"Authorization": "Bearer a"}, {"Authorization": "Bearer b"}
    assert [emu.get("/v1/me", headers=a).status_code for _ in range(3)] == [200, 200, 429]
    assert emu.get("/v1/me", headers=b).status_code == 200
    assert emu.get("/v2/me", headers=a).status_code == 200


def test_retry_after_is_sent_only_when_configured(make_emulator: Any) -> None:
    emu = make_emulator(default_rate_limit=1, send_retry_after=True)
    emu.get("/v1/me")
    emu.clock.advance(0.25)
    refused = emu.get("/v1/me")
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "1"


@given(
    limit=st.integers(min_value=1, max_value=20),
    gaps=st.lists(st.floats(min_value=0, max_value=0.3), min_size=1, max_size=80),
)
def test_no_one_second_interval_ever_admits_more_than_the_limit(
    limit: int, gaps: list[float]
) -> None:
    clock = ManualClock()
    limiter = SlidingWindowLimiter(clock)
    admitted: list[float] = []
    for gap in gaps:
        clock.advance(gap)
        if limiter.acquire(("key", "endpoint"), limit).allowed:
            admitted.append(clock())
    for start in admitted:
        assert sum(start <= t < start + 1.0 for t in admitted) <= limit


@given(gaps=st.lists(st.floats(min_value=1.0, max_value=5.0), min_size=1, max_size=30))
def test_a_client_within_the_limit_is_never_refused(gaps: list[float]) -> None:
    clock = ManualClock()
    limiter = SlidingWindowLimiter(clock)
    for gap in gaps:
        clock.advance(gap)
        assert limiter.acquire(("key", "endpoint"), 1).allowed


def test_rates_count_arrivals_per_key_and_second_throttled_included(make_emulator: Any) -> None:
    keys = {"secret-key-aaaa": frozenset(), "secret-key-bbbb": frozenset()}
    emu = make_emulator(keys=keys, default_rate_limit=3)
    a, b = {"Authorization": "Bearer secret-key-aaaa"}, {"Authorization": "Bearer secret-key-bbbb"}
    statuses = []
    for _ in range(4):  # the fourth within one second is a 429, and still arrived
        statuses.append(emu.get("/v1/me", headers=a).status_code)
        emu.clock.advance(0.1)
    emu.clock.advance(0.7)  # 1.1 s after start: a new second, and a window with room
    statuses.append(emu.get("/v1/me", headers=a).status_code)
    emu.get("/v1/me", headers=b)
    assert statuses == [200, 200, 200, 429, 200]
    report = emu.get("/_emulator/rates").json()["keys"]
    assert set(report) == {"...aaaa", "...bbbb"}  # key suffixes only, never a whole key
    me = report["...aaaa"]["me_v1"]
    assert me["per_second"] == {"0": 4, "1": 1}
    assert me["throttled_per_second"] == {"0": 1}
    assert (me["arrivals"], me["throttled"], me["busiest_second"]) == (5, 1, 4)
    assert me["busiest_sliding_second"] == 4
    assert report["...bbbb"]["me_v1"]["arrivals"] == 1
