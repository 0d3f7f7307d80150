import pytest

from attentive_sync.engine.prefetch import prefetched


def test_items_arrive_in_order():
    assert list(prefetched(iter(range(100)), depth=3)) == list(range(100))


def test_a_producer_error_reaches_the_consumer_after_the_good_items():
    def items():
        yield 1
        yield 2
        raise RuntimeError("source failed")

    got = []
    with pytest.raises(RuntimeError, match="source failed"):
        for item in prefetched(items()):
            got.append(item)
    assert got == [1, 2]


def test_a_consumer_that_stops_early_stops_the_producer():
    produced = []

    def items():
        for n in range(1000):
            produced.append(n)
            yield n

    for item in prefetched(items(), depth=2):
        if item == 3:
            break
    assert len(produced) < 10


def test_a_consumer_that_fails_after_the_producer_finished_is_not_left_waiting():
    # The producer has produced every item and is handing over the end marker into a full
    # buffer when the consumer gives up: it must see that and end, or the consumer's join
    # (and the whole run) waits for ever.
    import threading
    import time

    finished = threading.Event()

    def items():
        yield from range(3)
        finished.set()

    started = time.monotonic()
    with pytest.raises(KeyError):
        for _item in prefetched(items(), depth=2):
            finished.wait(5)
            time.sleep(0.05)  # the producer is now blocked on the full buffer
            raise KeyError("consumer failed")
    assert time.monotonic() - started < 5
