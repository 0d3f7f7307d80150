import threading

import pytest

from attentive_sync.attentive import TokenBucket


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
