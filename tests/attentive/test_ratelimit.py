import threading

import httpx
import pytest
from pydantic import SecretStr

from attentive_sync.attentive import AttentiveClient, TokenBucket
from attentive_sync.attentive._ratelimit import ratelimit_headers
from attentive_sync.settings import AttentiveSettings


def test_requests_spaced_at_the_configured_rate(fake_time):
    bucket = TokenBucket(100, clock=fake_time.clock, sleep=fake_time.sleep)
    stamps = []
    for _ in range(250):
        bucket.acquire()
        stamps.append(fake_time.now)
    # no one-second window holds more than the limit
    for i, start in enumerate(stamps):
        assert sum(1 for t in stamps[i:] if t < start + 1.0 - 1e-9) <= 100
    assert stamps[-1] >= 2.48


def test_idle_time_does_not_build_a_burst(fake_time):
    bucket = TokenBucket(10, clock=fake_time.clock, sleep=fake_time.sleep)
    fake_time.now = 1000.0
    waits = [bucket.acquire() for _ in range(3)]
    assert waits == [0.0, pytest.approx(0.1), pytest.approx(0.1)]


def test_threads_share_one_bucket():
    bucket = TokenBucket(50)
    done = []

    def worker():
        for _ in range(10):
            bucket.acquire()
        done.append(1)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    import time

    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # 40 requests at 50/s take at least 39/50 s whatever the thread count
    assert time.monotonic() - start >= 0.75
    assert len(done) == 4


def test_late_wakers_cannot_bunch_past_the_limit(fake_time):
    """Threads that wake late from their spacing wait are held by the log of actual sends."""
    bucket = TokenBucket(5, clock=fake_time.clock, sleep=fake_time.sleep)
    assert [bucket._admit() for _ in range(5)] == [0.0] * 5
    assert bucket._admit() == pytest.approx(1.0)  # a sixth send in the same second waits
    fake_time.now += 1.0
    assert bucket._admit() == 0.0


def test_a_spent_window_holds_the_next_slot_back_one_spacing(fake_time):
    bucket = TokenBucket(10, clock=fake_time.clock, sleep=fake_time.sleep)
    fake_time.now = 1000.0
    assert bucket.acquire() == 0.0
    bucket.observe(limit=10, remaining=0, throttled=False)
    assert bucket.acquire() == pytest.approx(0.2)  # its own spacing, then one more
    bucket.observe(limit=None, remaining=None, throttled=True)  # a 429 says the same
    assert bucket.acquire() == pytest.approx(0.2)
    bucket.observe(limit=10, remaining=3, throttled=False)
    assert bucket.acquire() == pytest.approx(0.1)


def test_a_lower_limit_in_the_headers_slows_the_pace_and_a_higher_one_does_not(fake_time):
    bucket = TokenBucket(98, clock=fake_time.clock, sleep=fake_time.sleep, headroom=0.02)
    bucket.observe(limit=500, remaining=499, throttled=False)
    assert bucket.rate == 98
    bucket.observe(limit=10, remaining=9, throttled=False)
    assert bucket.rate == pytest.approx(9.8)
    stamps = []
    for _ in range(30):
        bucket.acquire()
        stamps.append(fake_time.now)
    for i, start in enumerate(stamps):
        assert sum(1 for t in stamps[i:] if t < start + 1.0 - 1e-9) <= 10  # the new limit
    assert stamps[-1] - stamps[0] >= 29 / 9.8


def test_the_client_feeds_every_answer_s_headers_to_its_bucket():
    seen = []

    class Recorder:
        rate = 100.0

        def acquire(self) -> float:
            return 0.0

        def observe(self, limit, remaining, throttled):
            seen.append((limit, remaining, throttled))

    answers = iter(
        [
            httpx.Response(429, headers={"x-ratelimit-limit": "100", "x-ratelimit-remaining": "0"}),
            httpx.Response(
                200,
                json={"companyName": "Acme"},
                headers={"x-ratelimit-limit": "150", "x-ratelimit-remaining": "12"},
            ),
        ]
    )
    transport = httpx.MockTransport(lambda request: next(answers))
    settings = AttentiveSettings(api_key=SecretStr("sk-test"), base_url="https://api.example.com")
    buckets = {group: Recorder() for group in ("bulk", "jobs", "results", "events", "me")}
    client = AttentiveClient(
        settings, transport=transport, sleep=lambda s: None, rand=lambda: 0.5, buckets=buckets
    )
    assert client.me().company_name == "Acme"
    assert seen == [(100, 0, True), (150, 12, False)]


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"x-ratelimit-limit": "100", "x-ratelimit-remaining": "7"}, (100, 7)),
        ({"x-ratelimit-limit": "100.0"}, (100, None)),
        ({"x-ratelimit-remaining": "soon"}, (None, None)),
        ({}, (None, None)),
    ],
)
def test_rate_limit_headers_are_read_leniently(headers, expected):
    assert ratelimit_headers(httpx.Headers(headers)) == expected
