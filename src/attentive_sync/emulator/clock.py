"""Time as the emulator sees it: an injectable monotonic clock.

Rate-limit windows and job lifecycles read the clock instead of ``time`` directly, so tests
drive them with :class:`ManualClock` and never sleep.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

Clock = Callable[[], float]
"""A function returning monotonic seconds (``time.monotonic`` in production)."""


class ManualClock:
    """A clock that moves only when told to; safe to advance from another thread."""

    def __init__(self, start: float = 1_000.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> float:
        """Move time forward (never back: the emulator's windows assume monotonic time)."""
        if seconds < 0:
            raise ValueError("a monotonic clock cannot go backwards")
        with self._lock:
            self._now += seconds
            return self._now
