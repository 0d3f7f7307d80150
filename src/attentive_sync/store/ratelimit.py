"""Rate-limit buckets in PostgreSQL, shared by every worker that sends with one API key.

Attentive counts requests per key, not per process: two workers with in-process buckets
would each take the whole budget. Here a bucket is one row of ``rate_limit_buckets`` holding
the next free send slot (the generic cell rate algorithm): taking a slot is one statement,

    slot = max(next_slot, now); next_slot = slot + 1/rate

run in autocommit, so the row lock lasts only that statement, and answered with how long
the caller waits for its slot. Time is the database's clock, the one clock every worker
shares, so slots are spaced ``1/rate`` apart across all workers and hosts, and an idle
bucket builds no burst. Each process maps the database's clock onto its own from the
answers it gets (the smallest gap seen between the database's reading and the answer's
arrival), so an answer that comes back late shortens the wait instead of delaying the send:
what spaces the sends is the slot, not the round trip. A spent window reported by Attentive
(``x-ratelimit-remaining: 0`` or a 429) pushes the next slot back by one spacing, for every
worker at once.

If the database cannot be reached for a slot, the bucket falls back to an in-process one
(and says so in the log) rather than fail the send: the worst outcome is then a few 429s,
which the client retries.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from attentive_sync.attentive import RateBucket, TokenBucket, bucket_owner, group_rates
from attentive_sync.settings import AttentiveSettings

log = logging.getLogger("attentive_sync.store.ratelimit")

_NOW = "extract(epoch FROM clock_timestamp())::double precision"
_TAKE = text(
    f"""
    INSERT INTO rate_limit_buckets AS b (bucket, next_slot)
    VALUES (:bucket, {_NOW} + :interval)
    ON CONFLICT (bucket) DO UPDATE
        SET next_slot = greatest(b.next_slot + :interval, excluded.next_slot)
    RETURNING b.next_slot - :interval, {_NOW}
    """
)
_PUSH = text(
    f"""
    UPDATE rate_limit_buckets
    SET next_slot = greatest(next_slot, {_NOW}) + :interval
    WHERE bucket = :bucket
    """
)
# A fallback is logged at most this often, not once per request.
_WARN_EVERY = 60.0
# Slots given up by a caller that was too late for them, before it sends anyway.
_LATE_RETAKES = 3
_MIN_LATE = 0.002
# Clock readings kept to estimate the offset between the database's clock and this one.
_OFFSET_SAMPLES = 128
# ... and for no longer than this: the two clocks may drift apart over hours.
_OFFSET_MAX_AGE = 60.0


class PostgresBucket:
    """A rate-limit bucket kept in one PostgreSQL row, shared by every process using it."""

    def __init__(
        self,
        engine: Engine,
        bucket: str,
        rate: float,
        *,
        headroom: float = 0.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.bucket = bucket
        self._engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._headroom = headroom
        self._sleep = sleep
        self._fallback = TokenBucket(rate, headroom=headroom)
        self._lock = threading.Lock()
        self._warned_at: float | None = None
        self._clock = clock
        self._offsets: deque[tuple[float, float]] = deque(maxlen=_OFFSET_SAMPLES)
        # Sends at most ``d`` late after slots spaced at ``limit x (1 - headroom)`` keep every
        # one-second window within the limit while ``d <= headroom / (1 - headroom)``: 20 ms
        # at 2 %. A caller later than that takes a later slot.
        self._max_late = max(_MIN_LATE, headroom / (1.0 - headroom))
        self.late_slots = 0

    def _warn(self, action: str, exc: SQLAlchemyError) -> None:
        with self._lock:
            now = time.monotonic()
            if self._warned_at is not None and now - self._warned_at < _WARN_EVERY:
                return
            self._warned_at = now
        log.warning(
            "rate-limit bucket %s: cannot %s in the database (%s); pacing this process alone",
            self.bucket,
            action,
            type(exc).__name__,
        )

    def take(self) -> tuple[float, float]:
        """Take the next slot: ``(slot, now)``, both on the database's clock (epoch seconds)."""
        with self._engine.connect() as conn:
            row = conn.execute(_TAKE, {"bucket": self.bucket, "interval": 1.0 / self.rate}).one()
        return float(row[0]), float(row[1])

    def acquire(self) -> float:
        """Block until this request's slot; return the seconds waited.

        A caller that wakes (or hears back) too late for its slot takes a later one rather
        than go out bunched with the sends after it; after a few tries it goes anyway.
        """
        waited = 0.0
        for _ in range(_LATE_RETAKES + 1):
            try:
                slot, db_now = self.take()
            except SQLAlchemyError as exc:
                self._warn("take a slot", exc)
                return waited + self._fallback.acquire()
            local_slot = self._local(slot, db_now)
            wait = local_slot - self._clock()
            if wait > 0:
                self._sleep(wait)
                waited += wait
            if self._clock() - local_slot <= self._max_late:
                break
            self.late_slots += 1
        return waited

    def _local(self, slot: float, db_now: float) -> float:
        """The slot on this process's clock; ``db_now`` was read just before the answer left."""
        with self._lock:
            now = self._clock()
            offsets = self._offsets
            while offsets and offsets[0][0] < now - _OFFSET_MAX_AGE:
                offsets.popleft()
            offsets.append((now, now - db_now))
            return slot + min(offset for _, offset in offsets)

    def observe(self, limit: int | None, remaining: int | None, throttled: bool) -> None:
        """Adopt a lower limit Attentive reports; push the next slot back when it is spent."""
        self._fallback.observe(limit, remaining, throttled)
        if limit is not None and limit > 0:
            self.rate = min(self.rate, limit * (1.0 - self._headroom))
        if not (throttled or remaining == 0):
            return
        try:
            with self._engine.connect() as conn:
                conn.execute(_PUSH, {"bucket": self.bucket, "interval": 1.0 / self.rate})
        except SQLAlchemyError as exc:
            self._warn("push the next slot back", exc)


def postgres_buckets(engine: Engine, settings: AttentiveSettings) -> dict[str, RateBucket]:
    """One shared bucket per endpoint group for the key in ``settings``, kept in ``engine``."""
    owner = bucket_owner(settings)
    headroom = settings.rate_limit_headroom
    return {
        group: PostgresBucket(engine, f"{owner}/{group}", rate, headroom=headroom)
        for group, rate in group_rates(settings).items()
    }
