"""The garbage collector tuned for a long run that allocates a lot and keeps little.

A run turns every member into a few dicts and strings that die with their page, and
keeps almost nothing: reference counting frees them. With CPython's default thresholds
(a young collection every 700 net allocations) the collector still walks the young
generation tens of thousands of times per million members, and every few of those the
old generations too, which hold every object the process (Prefect included) has made
since it started. For the run, the objects that exist already are frozen out of the
collector's sight, and young collections come 100 times less often; cycles are still
collected, later. Nested or concurrent runs share one tuning: the last one out restores
what was there before.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

YOUNG_THRESHOLD = 70_000

_lock = threading.Lock()
_depth = 0
_saved: tuple[int, int, int] | None = None


@contextmanager
def tuned_gc() -> Iterator[None]:
    """Run the body with the collector tuned as above; restored on the way out."""
    global _depth, _saved
    with _lock:
        if _depth == 0:
            _saved = gc.get_threshold()
            gc.freeze()
            gc.set_threshold(YOUNG_THRESHOLD, _saved[1], _saved[2])
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _saved is not None:
                gc.set_threshold(*_saved)
                gc.unfreeze()
                _saved = None
