"""Shared fixtures: an in-process emulator on a manual clock, and payload builders."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal

from attentive_sync.emulator import EmulatorConfig, ManualClock, create_app
from attentive_sync.emulator.state import EmulatorState
from attentive_sync.settings import DEMO_API_KEY

AUTH = {"Authorization": f"Bearer {DEMO_API_KEY}"}


class Emulator:
    """A synchronous client for an in-process emulator, plus its state and clock."""

    def __init__(self, portal: BlockingPortal, config: EmulatorConfig, clock: ManualClock):
        self.app = create_app(config, clock=clock)
        self.state: EmulatorState = self.app.state.emulator
        self.clock = clock
        self._portal = portal
        self._client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url="http://emulator.test"
        )

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        kwargs.setdefault("headers", AUTH)
        return self._portal.call(lambda: self._client.request(method, url, **kwargs))

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def submit(self, users: list[dict[str, Any]], headers: dict[str, str] = AUTH) -> str:
        """Submit a bulk job that must be accepted; returns its id."""
        response = self.post("/v2/bulk/user/attributes", json={"users": users}, headers=headers)
        assert response.status_code == 202, response.text
        return response.json()["batchJobId"]

    def close(self) -> None:
        self._portal.call(self._client.aclose)


@pytest.fixture
def portal() -> Iterator[BlockingPortal]:
    with start_blocking_portal() as running:
        yield running


@pytest.fixture
def make_emulator(portal: BlockingPortal) -> Iterator[Callable[..., Emulator]]:
    """Build an emulator from config keywords, on a manual clock."""
    made: list[Emulator] = []

    def make(**config: Any) -> Emulator:
        emulator = Emulator(portal, EmulatorConfig(**config), ManualClock())
        made.append(emulator)
        return emulator

    yield make
    for emulator in made:
        emulator.close()


@pytest.fixture
def emu(make_emulator: Callable[..., Emulator]) -> Emulator:
    return make_emulator(job_delay=1.0)


def user(n: int = 0, **overrides: Any) -> dict[str, Any]:
    """A valid bulk user item, distinct per ``n``."""
    item: dict[str, Any] = {
        "identifiers": {"phone": f"+1555{n:07d}", "clientUserId": f"customer-{n}"},
        "attributes": {"firstName": "Ada", "custom": {"vip": True}},
    }
    item.update(overrides)
    return item
