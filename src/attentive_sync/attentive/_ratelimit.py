"""A client-side rate limiter per endpoint group, shared by every thread of a process.

The engine should stay under Attentive's limits instead of bouncing off them: each request
takes a slot from its group's bucket first. The bucket holds a single token: requests are
spaced evenly at ``1/rate`` seconds, so no one-second window ever holds more than the limit,
however many threads share it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class TokenBucket:
    def __init__(
        self,
        rate: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self._capacity = 1.0
        self._tokens = 1.0
        self._clock = clock
        self._sleep = sleep
        self._updated = clock()
        self._lock = threading.Lock()

    def _reserve(self) -> float:
        """Take a token, possibly going into debt; return how long the caller must wait."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self._capacity, self._tokens + (now - self._updated) * self.rate)
            self._updated = now
            self._tokens -= 1.0
            return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    def acquire(self) -> float:
        """Block until a request may go; return the seconds waited."""
        wait = self._reserve()
        if wait > 0:
            self._sleep(wait)
        return wait


_registry: dict[tuple[str, str, float], TokenBucket] = {}
_registry_lock = threading.Lock()


def shared_bucket(owner: str, group: str, rate: float) -> TokenBucket:
    """The process-wide bucket for (key fingerprint, group, rate)."""
    with _registry_lock:
        key = (owner, group, rate)
        if key not in _registry:
            _registry[key] = TokenBucket(rate)
        return _registry[key]
