"""One retry policy for every queue: bounded attempts, capped exponential backoff.

A record that fails in a way that may pass later is tried again after a wait that doubles
with each attempt, up to a cap; after ``max_attempts`` it goes to the quarantine with
``retries_exhausted`` and its last error, so it neither loops for ever nor holds back its
customer's later changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from attentive_sync.settings import SyncSettings

RETRIES_EXHAUSTED = "retries_exhausted"


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 8
    base_seconds: float = 30.0
    cap_seconds: float = 3600.0

    @classmethod
    def from_settings(cls, sync: SyncSettings) -> RetryPolicy:
        return cls(sync.max_attempts, sync.retry_backoff_seconds, sync.retry_backoff_cap_seconds)

    def next_attempt(self, attempts_so_far: int, now: datetime) -> datetime | None:
        """When to try again after a failed attempt; ``None``: give up (quarantine).

        ``attempts_so_far`` counts the failed attempts before this one.
        """
        if attempts_so_far + 1 >= self.max_attempts:
            return None
        wait = min(self.cap_seconds, self.base_seconds * 2**attempts_so_far)
        return now + timedelta(seconds=wait)

    def exhausted_detail(self, last_error: str) -> str:
        return f"{self.max_attempts} attempts; last error: {last_error}"
