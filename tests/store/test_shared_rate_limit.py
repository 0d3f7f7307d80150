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


@pytest.fixture
def engine(pg_url: str) -> Iterator[Engine]:
    init_db(pg_url)
    made = make_engine(pg_url)
    yield made
    made.dispose()


def no_sleep(seconds: float) -> None:
    """The workers that must not wait for real (their 429 retries go at once)."""


EXACT = 1e-6  # slots are computed in the database: spacing is exact, not timed


def test_two_workers_drawing_from_one_row_get_evenly_spaced_slots(engine: Engine) -> None:
    a = PostgresBucket(engine, "owner/bulk", 1 / SPACING)
    b = PostgresBucket(engine, "owner/bulk", 1 / SPACING)
    slots = [(a if i % 3 else b).take()[0] for i in range(30)]
    gaps = [later - earlier for earlier, later in zip(slots, slots[1:], strict=False)]
    assert min(gaps) >= SPACING - EXACT  # never closer, whoever takes the slot
    # Another group of the same key, or another key, has its own row.
    other, now = PostgresBucket(engine, "owner/jobs", 1 / SPACING).take()
    assert other <= now


def test_an_idle_bucket_builds_no_burst(engine: Engine) -> None:
    bucket = PostgresBucket(engine, "owner/bulk", 1 / SPACING)
    bucket.take()
    time.sleep(3 * SPACING)
    first, now = bucket.take()
    assert now - 0.001 <= first <= now  # a slot never lies in the past: no stored burst
    assert bucket.take()[0] - first >= SPACING - EXACT


def test_a_spent_window_holds_every_worker_back_one_spacing(engine: Engine) -> None:
    a = PostgresBucket(engine, "owner/bulk", 1.0)  # one a second: the test takes them sooner
    b = PostgresBucket(engine, "owner/bulk", 1.0)
    first, _ = a.take()
    a.observe(limit=None, remaining=0, throttled=False)
    assert b.take()[0] - first == pytest.approx(2.0, abs=EXACT)
    b.observe(limit=None, remaining=None, throttled=True)  # a 429 says the same
    assert a.take()[0] - first == pytest.approx(4.0, abs=EXACT)


def test_a_lower_limit_in_the_headers_slows_the_pace(engine: Engine) -> None:
    bucket = PostgresBucket(engine, "owner/bulk", 100, headroom=0.5)
    bucket.observe(limit=500, remaining=7, throttled=False)
    assert bucket.rate == 100  # a higher limit never raises the configured pace
    bucket.observe(limit=2, remaining=1, throttled=False)
    assert bucket.rate == 1
    first, _ = bucket.take()
    assert bucket.take()[0] - first == pytest.approx(1.0, abs=EXACT)


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)


def test_a_late_answer_shortens_the_wait_instead_of_delaying_the_send(engine: Engine) -> None:
    clock = FakeClock(100.0)
    bucket = PostgresBucket(engine, "owner/bulk", 10, clock=clock, sleep=clock.sleep)
    answers = iter([(50.5, 50.0), (50.6, 50.1)])  # (slot, database clock) as ``take`` says
    bucket.take = lambda: next(answers)  # type: ignore[method-assign]
    bucket.acquire()  # answered at once: the database is 50 s behind this clock
    clock.now = 100.3  # the next answer took 0.2 s to arrive
    bucket.acquire()
    assert clock.slept == [pytest.approx(0.5), pytest.approx(0.3)]  # both sent on their slot


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


def test_a_caller_too_late_for_its_slot_takes_a_later_one(engine: Engine) -> None:
    clock = FakeClock(100.0)

    def late_sleep(seconds: float) -> None:
        clock.slept.append(seconds)
        clock.now += seconds + 0.05  # woke 50 ms late: more than 2 % headroom allows

    bucket = PostgresBucket(engine, "owner/bulk", 10, headroom=0.02, clock=clock, sleep=late_sleep)
    answers = iter([(50.5, 50.0), (51.0, 50.55), (51.1, 50.65), (51.2, 50.75), (51.3, 50.85)])
    bucket.take = lambda: next(answers)  # type: ignore[method-assign]
    bucket.acquire()
    # Every wake-up was late: the caller gave up three slots and went on the fourth anyway.
    assert bucket.late_slots == 4
    assert len(clock.slept) == 4
    on_time = PostgresBucket(
        engine, "owner/bulk", 10, headroom=0.02, clock=clock, sleep=clock.sleep
    )
    on_time.take = lambda: (52.0, 51.0)  # type: ignore[method-assign]
    on_time.acquire()
    assert on_time.late_slots == 0


def test_old_clock_readings_are_forgotten(engine: Engine) -> None:
    """The clocks may drift apart over hours: a reading from long ago no longer counts."""
    clock = FakeClock(100.0)
    bucket = PostgresBucket(engine, "owner/bulk", 10, clock=clock, sleep=clock.sleep)
    answers = iter([(50.0, 50.0), (3650.2, 3649.8)])
    bucket.take = lambda: next(answers)  # type: ignore[method-assign]
    bucket.acquire()  # offset 50.0 s, an hour ago
    clock.now = 3700.0  # an hour on, the database's clock is 0.2 s further behind this one
    bucket.acquire()
    assert clock.slept == [pytest.approx(0.4)]  # the slot mapped with today's offset only
