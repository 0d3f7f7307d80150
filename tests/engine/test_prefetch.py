import threading
import time

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


def test_a_consumer_that_stops_while_the_producer_waits_to_say_done_does_not_hang():
    finished = threading.Event()

    def consume():
        for _ in prefetched(iter([1, 2]), depth=1):
            time.sleep(0.3)  # meanwhile the producer buffers 2 and waits to mark the end
            break
        finished.set()

    threading.Thread(target=consume, daemon=True).start()
    assert finished.wait(5), "the consumer hung joining a producer stuck on a full buffer"
