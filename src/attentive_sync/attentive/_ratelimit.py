"""A client-side rate limiter per endpoint group, shared by every thread of a process.

The engine should stay under Attentive's limits instead of bouncing off them: each request
takes a slot from its group's bucket first. The bucket holds a single token: requests are
spaced evenly at ``1/rate`` seconds, however many threads share it; and a sliding log of
actual send times makes sure no one-second window holds more than the limit even when
threads wake late from their wait.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
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
        self._sent: deque[float] = deque()
        self._window_cap = max(1, math.floor(rate))

    def _reserve(self) -> float:
        """Take a token, possibly going into debt; return how long the caller must wait."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self._capacity, self._tokens + (now - self._updated) * self.rate)
            self._updated = now
            self._tokens -= 1.0
            return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    def _admit(self) -> float:
        """After waking: how much longer to wait so that no one-second window holds more
        than ``rate`` sends. A thread that woke late must not go out in a bunch with the
        ones that woke on time; 0 means the send is recorded and may go now."""
        with self._lock:
            now = self._clock()
            while self._sent and self._sent[0] <= now - 1.0:
                self._sent.popleft()
            if len(self._sent) >= self._window_cap:
                return self._sent[0] + 1.0 - now
            self._sent.append(now)
            return 0.0

    def acquire(self) -> float:
        """Block until a request may go; return the seconds waited."""
        waited = self._reserve()
        if waited > 0:
            self._sleep(waited)
        while (extra := self._admit()) > 0:
            self._sleep(extra)
            waited += extra
        return waited


_registry: dict[tuple[str, str, float], TokenBucket] = {}
_registry_lock = threading.Lock()


def shared_bucket(owner: str, group: str, rate: float) -> TokenBucket:
    """The process-wide bucket for (key fingerprint, group, rate)."""
    with _registry_lock:
        key = (owner, group, rate)
        if key not in _registry:
            _registry[key] = TokenBucket(rate)
        return _registry[key]
