"""Rate-limit buckets in PostgreSQL: every worker of one API key shares one budget."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import Engine

from attentive_sync.attentive import AttentiveClient, AttentiveError, TokenBucket
from attentive_sync.attentive._ratelimit import group_rates
from attentive_sync.emulator import EmulatorConfig, EmulatorServer
from attentive_sync.engine.runtime import build_runtime
from attentive_sync.settings import DEMO_API_KEY, AttentiveSettings, SyncSettings
from attentive_sync.store import init_db, make_engine
from attentive_sync.store.ratelimit import PostgresBucket, postgres_buckets

SPACING = 0.05  # 20 slots a second: far slower than the test's loop, so slots queue up
TOLERANCE = 0.01  # round trips measured on the local clock, slots on the database's


@pytest.fixture
def engine(pg_url: str) -> Iterator[Engine]:
    init_db(pg_url)
    made = make_engine(pg_url)
    PostgresBucket(made, "warm-up", 1, sleep=no_sleep).acquire()  # connect before timing
    yield made
    made.dispose()


def no_sleep(seconds: float) -> None:
    """Slots are checked by what ``acquire`` says to wait, not by waiting."""


class Slots:
    """When each acquired slot falls, in seconds after the first: time asked plus wait."""

    def __init__(self) -> None:
        self.first: float | None = None

    def take(self, bucket: PostgresBucket) -> float:
        asked = time.monotonic()
        slot = asked + bucket.acquire()
        if self.first is None:
            self.first = slot
        return slot - self.first


def test_two_workers_drawing_from_one_row_get_evenly_spaced_slots(engine: Engine) -> None:
    a = PostgresBucket(engine, "owner/bulk", 1 / SPACING, sleep=no_sleep)
    b = PostgresBucket(engine, "owner/bulk", 1 / SPACING, sleep=no_sleep)
    start = time.monotonic()
    slots = []
    for i in range(30):
        asked = time.monotonic()
        waited = (a if i % 3 else b).acquire()
        slots.append(asked - start + waited)
    for i, slot in enumerate(slots):
        assert slot - slots[0] == pytest.approx(i * SPACING, abs=TOLERANCE)
    # Another group of the same key, or another key, has its own row.
    assert PostgresBucket(engine, "owner/jobs", 1 / SPACING, sleep=no_sleep).acquire() == 0.0


def test_an_idle_bucket_builds_no_burst(engine: Engine) -> None:
    bucket = PostgresBucket(engine, "owner/bulk", 1 / SPACING, sleep=no_sleep)
    bucket.acquire()
    time.sleep(3 * SPACING)
    slots = Slots()
    assert bucket.acquire() < TOLERANCE
    slots.take(bucket)
    assert slots.take(bucket) == pytest.approx(SPACING, abs=TOLERANCE)


def test_a_spent_window_holds_every_worker_back_one_spacing(engine: Engine) -> None:
    a = PostgresBucket(engine, "owner/bulk", 1 / SPACING, sleep=no_sleep)
    b = PostgresBucket(engine, "owner/bulk", 1 / SPACING, sleep=no_sleep)
    slots = Slots()
    slots.take(a)
    a.observe(limit=None, remaining=0, throttled=False)
    assert slots.take(b) == pytest.approx(2 * SPACING, abs=TOLERANCE)
    b.observe(limit=None, remaining=None, throttled=True)  # a 429 says the same
    assert slots.take(a) == pytest.approx(4 * SPACING, abs=TOLERANCE)


def test_a_lower_limit_in_the_headers_slows_the_pace(engine: Engine) -> None:
    bucket = PostgresBucket(engine, "owner/bulk", 100, headroom=0.5, sleep=no_sleep)
    bucket.observe(limit=500, remaining=7, throttled=False)
    assert bucket.rate == 100  # a higher limit never raises the configured pace
    bucket.observe(limit=10, remaining=7, throttled=False)
    assert bucket.rate == 5
    slots = Slots()
    slots.take(bucket)
    assert slots.take(bucket) == pytest.approx(0.2, abs=TOLERANCE)


def test_without_its_table_the_bucket_paces_the_process_alone_and_says_so(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    bare = make_engine(pg_url)  # a schema never initialised: no rate_limit_buckets table
    try:
        bucket = PostgresBucket(bare, "owner/bulk", 1000)
        with caplog.at_level(logging.WARNING, logger="attentive_sync.store.ratelimit"):
            bucket.acquire()
            bucket.acquire()
            bucket.observe(limit=None, remaining=0, throttled=False)
    finally:
        bare.dispose()
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1  # logged once, not once per request
    assert "cannot take a slot" in warnings[0] and "pacing this process alone" in warnings[0]


def test_one_bucket_per_group_named_by_key_fingerprint_never_by_key(engine: Engine) -> None:
    settings = AttentiveSettings(api_key=SecretStr("sk-secret-value"), rate_limit_headroom=0.1)
    buckets = postgres_buckets(engine, settings)
    assert set(buckets) == set(group_rates(settings))
    assert buckets["bulk"].rate == pytest.approx(90.0)
    assert buckets["events"].rate == pytest.approx(135.0)
    names = {bucket.bucket for bucket in buckets.values()}  # type: ignore[attr-defined]
    assert len(names) == len(buckets)
    assert not any("sk-secret-value" in name for name in names)


def test_the_runtime_shares_the_bucket_on_postgresql_only(store_url: str) -> None:
    sync = SyncSettings(db_url=store_url)
    runtime = build_runtime(sync, AttentiveSettings(api_key=SecretStr("sk-test")))
    try:
        bucket = runtime.client._buckets["bulk"]
        expected = PostgresBucket if store_url.startswith("postgresql") else TokenBucket
        assert isinstance(bucket, expected)
    finally:
        runtime.close()


LIMIT = 20
RUN_SECONDS = 2.5


def _run_workers(server: EmulatorServer, clients: list[AttentiveClient]) -> dict[str, Any]:
    """Each client plays one worker with three sending threads, as fast as it may go."""
    stop_at = time.monotonic() + RUN_SECONDS

    def send(client: AttentiveClient, thread: int) -> None:
        n = 0
        while time.monotonic() < stop_at:
            phone = f"+1555{thread:02d}{n:05d}"
            # A 429 that outlived its retries: the emulator has counted it anyway.
            with contextlib.suppress(AttentiveError):
                client.submit_bulk_users([{"identifiers": {"phone": phone}}])
            n += 1

    threads = [
        threading.Thread(target=send, args=(client, i * 10 + j))
        for i, client in enumerate(clients)
        for j in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for client in clients:
        client.close()
    report = server.state.rate_report()
    ((_, endpoints),) = report.items()  # one key
    return endpoints["bulk_user_attributes"]


def _settings(server: EmulatorServer) -> AttentiveSettings:
    return AttentiveSettings(
        api_key=SecretStr(DEMO_API_KEY),
        base_url=server.base_url,
        bulk_rate_limit=LIMIT,
        rate_limit_headroom=0.1,
    )


def test_two_workers_on_one_key_together_never_exceed_the_limit(engine: Engine) -> None:
    """The emulator counts every arrival per second: 429s would show up there too."""
    config = EmulatorConfig(job_delay=0, bulk_rate_limit=LIMIT)
    with EmulatorServer(config) as server:
        settings = _settings(server)
        # Two workers: two clients that share nothing in the process, only the database.
        clients = [AttentiveClient(settings, buckets=postgres_buckets(engine, settings))]
        clients.append(AttentiveClient(settings, buckets=postgres_buckets(engine, settings)))
        figures = _run_workers(server, clients)
    assert figures["throttled"] == 0
    assert figures["busiest_second"] <= LIMIT
    assert figures["busiest_sliding_second"] <= LIMIT
    # ... and together they used the budget they were given (18/s), not half of it.
    assert figures["arrivals"] >= 0.8 * LIMIT * 0.9 * RUN_SECONDS


def test_two_workers_pacing_alone_would_take_the_budget_twice(engine: Engine) -> None:
    """The same run with a bucket per worker: the check above can fail."""
    config = EmulatorConfig(job_delay=0, bulk_rate_limit=LIMIT)
    with EmulatorServer(config) as server:
        settings = _settings(server)
        rate = group_rates(settings)["bulk"]
        clients = [
            AttentiveClient(settings, buckets={"bulk": TokenBucket(rate)}, sleep=no_sleep)
            for _ in range(2)
        ]
        figures = _run_workers(server, clients)
    assert figures["busiest_sliding_second"] > LIMIT
