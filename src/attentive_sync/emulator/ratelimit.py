"""Per-key, per-endpoint rate limits over a sliding one-second window.

A sliding log is exact where a fixed window is not: with a fixed window, 100 requests at the
end of one second and 100 at the start of the next all pass, although 200 arrived within one
second. Here no interval of ``window`` seconds ever holds more than ``limit`` accepted requests.
Requests turned away are not logged, so a client that backs off recovers at once.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from attentive_sync.emulator.clock import Clock


@dataclass(frozen=True, slots=True)
class Decision:
    """One admission verdict and what the rate-limit headers say about it."""

    allowed: bool
    limit: int
    remaining: int
    retry_after: float

    def headers(self, *, with_retry_after: bool = False) -> dict[str, str]:
        out = {"x-ratelimit-limit": str(self.limit), "x-ratelimit-remaining": str(self.remaining)}
        if with_retry_after and not self.allowed:
            out["retry-after"] = str(max(1, math.ceil(self.retry_after)))
        return out


class SlidingWindowLimiter:
    """Admits at most ``limit`` requests per bucket in any ``window`` seconds."""

    def __init__(self, clock: Clock, window: float = 1.0) -> None:
        self._clock = clock
        self._window = window
        self._log: dict[tuple[str, str], deque[float]] = {}

    def _expire(self, bucket: tuple[str, str], now: float) -> deque[float]:
        times = self._log.setdefault(bucket, deque())
        # A request exactly one window after another is within the limit; the tolerance
        # keeps float rounding of summed clock readings from deciding otherwise.
        horizon = now - self._window + 1e-9
        while times and times[0] <= horizon:
            times.popleft()
        return times

    def acquire(self, bucket: tuple[str, str], limit: int) -> Decision:
        """Admit one request to ``bucket`` if the window has room, and record it."""
        now = self._clock()
        times = self._expire(bucket, now)
        if len(times) >= limit:
            return Decision(False, limit, 0, times[0] + self._window - now)
        times.append(now)
        return Decision(True, limit, limit - len(times), 0.0)

    def peek(self, bucket: tuple[str, str], limit: int) -> Decision:
        """The bucket's standing without spending from it (for answers that do not count)."""
        used = len(self._expire(bucket, self._clock())) if bucket in self._log else 0
        return Decision(used < limit, limit, max(0, limit - used), 0.0)
