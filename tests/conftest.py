import pytest
from pydantic import SecretStr

from attentive_sync.attentive import AttentiveClient, TokenBucket
from attentive_sync.settings import AttentiveSettings

pytest_plugins = ["support.program", "tests.fixtures.stores"]

BASE = "https://api.attentivemobile.com"


class FakeTime:
    """A clock that only moves when something sleeps on it."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def make_client(fake_time):
    def make(**settings):
        cfg = AttentiveSettings(api_key=SecretStr("sk-test-123"), base_url=BASE, **settings)
        buckets = {
            g: TokenBucket(1000, clock=fake_time.clock, sleep=fake_time.sleep)
            for g in ("bulk", "jobs", "results", "events", "me")
        }
        return AttentiveClient(cfg, sleep=fake_time.sleep, rand=lambda: 0.5, buckets=buckets)

    return make
