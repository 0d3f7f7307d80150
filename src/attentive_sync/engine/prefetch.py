"""Overlapping the reading and mapping of the next page with the sending of this one.

Sending spends most of its time waiting (on the rate limiter, on Attentive), reading and
mapping spend theirs computing; a producer thread a couple of pages ahead lets the two run
at once. Items arrive in order; an error in the producer is raised in the consumer.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
_DONE = object()


def prefetched(items: Iterable[T], depth: int = 2) -> Iterator[T]:
    """Iterate ``items`` with up to ``depth`` of them produced ahead on a background thread."""
    buffer: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def hand_over(item: object) -> bool:
        """Put ``item`` in the buffer unless the consumer stopped (then nobody takes it,
        and a blocking put would never return)."""
        while not stop.is_set():
            try:
                buffer.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not hand_over(item):
                    return
            hand_over(_DONE)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            hand_over(exc)

    worker = threading.Thread(target=produce, name="prefetch", daemon=True)
    worker.start()
    try:
        while (item := buffer.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        # Wait for the page in hand: its side effects (quarantine rows) must not go on
        # behind a caller that has already given up, or run into a rerun.
        stop.set()
        worker.join()
