"""The client against a misbehaving Attentive: every batch delivered, the rate never exceeded."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from pydantic import SecretStr

from attentive_sync.attentive import AttentiveClient, AuthenticationError, PermissionDenied
from attentive_sync.emulator import EmulatorConfig, EmulatorServer, FaultSettings
from attentive_sync.settings import DEMO_API_KEY, AttentiveSettings

RATE = 40


class RecordingTransport(httpx.HTTPTransport):
    """Notes when each request leaves the client."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[float] = []
        self._lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self.sent.append(time.monotonic())
        return super().handle_request(request)


def batch(n: int) -> list[dict]:
    return [
        {"identifiers": {"clientUserId": f"c{n}-{i}"}, "attributes": {"custom": {"vip": True}}}
        for i in range(10)
    ]


def client_for(emulator: EmulatorServer, transport: httpx.BaseTransport, key: str = DEMO_API_KEY):
    settings = AttentiveSettings(
        api_key=SecretStr(key),
        base_url=emulator.base_url,
        bulk_rate_limit=RATE,
        backoff_base=0.05,
        backoff_cap=1.0,
        max_attempts=12,
    )
    return AttentiveClient(settings, transport=transport)


def max_in_any_second(stamps: list[float]) -> int:
    stamps = sorted(stamps)
    return max(sum(1 for t in stamps[i:] if t < start + 1.0) for i, start in enumerate(stamps))


def test_100_batches_through_5xx_and_a_429_storm_all_delivered_under_the_rate():
    config = EmulatorConfig(job_delay=0, faults=FaultSettings(error_rate=0.2), seed=5)
    with EmulatorServer(config) as emulator:
        emulator.state.change_faults({}, storm_requests=15)
        transport = RecordingTransport()
        client = client_for(emulator, transport)
        with ThreadPoolExecutor(4) as pool:
            job_ids = list(pool.map(lambda n: client.submit_bulk_users(batch(n)), range(100)))
        stats = emulator.state.stats()
    assert len(set(job_ids)) == 100  # every batch delivered, each exactly once
    assert stats["throttled"] >= 15 and stats["injected_errors"] > 0
    assert client.retries >= 15 + stats["injected_errors"] - 1
    assert max_in_any_second(transport.sent) <= RATE


def test_wrong_key_and_missing_scope_stop_with_a_clear_message():
    keys = {DEMO_API_KEY: frozenset({"events:write", "attributes:write"})}
    with EmulatorServer(EmulatorConfig(keys=keys)) as emulator:
        with pytest.raises(AuthenticationError, match="ATTENTIVE_API_KEY"):
            client_for(emulator, httpx.HTTPTransport(), "not-a-key").me()
        with pytest.raises(PermissionDenied, match="subscriptions:write"):
            client_for(emulator, httpx.HTTPTransport()).submit_bulk_users(batch(1))
