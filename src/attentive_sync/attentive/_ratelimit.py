"""Client-side rate limiting per endpoint group: stay under Attentive's limits, not bounce off.

Each request takes a slot from its group's bucket first. A bucket spaces requests evenly at
``1/rate`` seconds, however many threads (or, with a shared bucket, processes) draw from it:
no burst ever builds up, so any one-second window holds at most ``rate`` slots and the
headroom between ``rate`` and the real limit absorbs the jitter of threads that wake late
and of the network.

Every answer's ``x-ratelimit-limit`` and ``x-ratelimit-remaining`` are fed back
(:meth:`RateBucket.observe`): a limit lower than the configured one lowers the pace to it,
and a spent window (``remaining`` 0, or a 429) holds the next slot back by one spacing, the
time the server's window takes to free a place at this pace.

:class:`TokenBucket` lives in one process. When several workers share an API key, each must
draw from one bucket kept where they all look: ``attentive_sync.store.ratelimit`` keeps it in
PostgreSQL, and the engine's runtime hands it to the client when the state store is there.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Protocol

from attentive_sync.settings import AttentiveSettings

# Endpoint group -> which rate limit applies (Attentive limits per key and endpoint).
BULK, JOBS, RESULTS = "bulk", "jobs", "results"
EVENTS, ME = "events", "me"


class RateBucket(Protocol):
    """What the client needs of a bucket: a slot before each request, the answer after it."""

    rate: float

    def acquire(self) -> float:
        """Block until a request may go; return the seconds waited."""
        ...

    def observe(self, limit: int | None, remaining: int | None, throttled: bool) -> None:
        """What the answer said: its rate-limit headers, and whether it was a 429."""
        ...


def ratelimit_headers(headers: Mapping[str, str]) -> tuple[int | None, int | None]:
    """``(x-ratelimit-limit, x-ratelimit-remaining)`` as numbers; ``None`` when absent or junk."""

    def number(name: str) -> int | None:
        value = headers.get(name)
        if value is None:
            return None
        try:
            return int(float(value))
        except ValueError:
            return None

    return number("x-ratelimit-limit"), number("x-ratelimit-remaining")


def paced_rate(limit: float, headroom: float) -> float:
    """The pace a bucket keeps for a limit: the limit less the headroom."""
    return limit * (1.0 - headroom)


def bucket_owner(settings: AttentiveSettings) -> str:
    """Who a bucket belongs to: a fingerprint of the base URL and key, never the key itself."""
    key = settings.api_key.get_secret_value() if settings.api_key else ""
    return hashlib.sha256(f"{settings.base_url}|{key}".encode()).hexdigest()[:16]


def group_rates(settings: AttentiveSettings) -> dict[str, float]:
    """The paced rate of every endpoint group.

    Results files are their own endpoint (often not Attentive's host at all): they must not
    wait behind the job status reads in one bucket.
    """
    bulk = paced_rate(settings.bulk_rate_limit, settings.rate_limit_headroom)
    default = paced_rate(settings.default_rate_limit, settings.rate_limit_headroom)
    return {BULK: bulk, JOBS: bulk, RESULTS: bulk, EVENTS: default, ME: default}


class TokenBucket:
    """A bucket for the threads of one process.

    Beside the spacing, a sliding log of actual send times makes sure no one-second window
    holds more than ``rate`` sends even when threads wake late from their wait.
    """

    def __init__(
        self,
        rate: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        headroom: float = 0.0,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self._headroom = headroom
        self._capacity = 1.0
        self._tokens = 1.0
        self._clock = clock
        self._sleep = sleep
        self._updated = clock()
        self._lock = threading.Lock()
        self._sent: deque[float] = deque()
        self._window_cap = max(1, math.floor(rate))

    def _refill(self, now: float) -> None:
        self._tokens = min(self._capacity, self._tokens + (now - self._updated) * self.rate)
        self._updated = now

    def _reserve(self) -> float:
        """Take a token, possibly going into debt; return how long the caller must wait."""
        with self._lock:
            self._refill(self._clock())
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

    def observe(self, limit: int | None, remaining: int | None, throttled: bool) -> None:
        with self._lock:
            if limit is not None and limit > 0:
                paced = paced_rate(limit, self._headroom)
                if paced < self.rate:
                    self.rate = paced
                    self._window_cap = max(1, math.floor(paced))
            if throttled or remaining == 0:
                # The server's window is full: the next slot waits one more spacing.
                self._refill(self._clock())
                self._tokens = min(self._tokens, 0.0) - 1.0


_registry: dict[tuple[str, str, float], TokenBucket] = {}
_registry_lock = threading.Lock()


def shared_bucket(owner: str, group: str, rate: float, headroom: float = 0.0) -> TokenBucket:
    """The process-wide bucket for (key fingerprint, group, rate)."""
    with _registry_lock:
        key = (owner, group, rate)
        if key not in _registry:
            _registry[key] = TokenBucket(rate, headroom=headroom)
        return _registry[key]


def process_buckets(settings: AttentiveSettings) -> dict[str, TokenBucket]:
    """The in-process buckets of every endpoint group for these settings."""
    owner = bucket_owner(settings)
    headroom = settings.rate_limit_headroom
    return {
        group: shared_bucket(owner, group, rate, headroom)
        for group, rate in group_rates(settings).items()
    }
