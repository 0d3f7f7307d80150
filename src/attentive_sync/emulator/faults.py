"""Fault injection: 5xx, 429 storms, latency, dropped connections, lost answers, bad jobs.

Every draw comes from one seeded generator, so a run with the same seed and the same request
sequence misbehaves identically. A rate of zero costs no draw, so faults that are switched
off leave the sequence of the others unchanged.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from attentive_sync.emulator.clock import Clock
from attentive_sync.emulator.config import FaultSettings

SERVER_ERRORS = (500, 502, 503)


class FaultInjector:
    """Decides, request by request, whether something goes wrong."""

    def __init__(self, settings: FaultSettings, rng: random.Random, clock: Clock) -> None:
        self.settings = settings
        self._rng = rng
        self._clock = clock
        self._storm_requests = 0
        self._storm_until = 0.0

    def _hit(self, rate: float) -> bool:
        return rate > 0 and self._rng.random() < rate

    def update(self, changes: Mapping[str, Any]) -> FaultSettings:
        """Change some settings at run time; raises ``pydantic.ValidationError`` on bad input."""
        self.settings = FaultSettings.model_validate({**self.settings.model_dump(), **changes})
        return self.settings

    def start_storm(self, requests: int = 0, seconds: float = 0.0) -> None:
        """Answer the next ``requests`` API requests, and all for ``seconds``, with 429."""
        if requests < 0 or seconds < 0:
            raise ValueError("a storm needs a non-negative request count and duration")
        self._storm_requests = requests
        self._storm_until = self._clock() + seconds if seconds else 0.0

    def in_storm(self) -> bool:
        """Whether this request is caught by a storm (a counted storm spends one request)."""
        if self._storm_requests > 0:
            self._storm_requests -= 1
            return True
        return self._clock() < self._storm_until

    def drop(self) -> bool:
        return self._hit(self.settings.drop_rate)

    def lose_response(self) -> bool:
        """Whether to drop the connection after a request was handled (its answer is lost)."""
        return self._hit(self.settings.lose_response_rate)

    def server_error(self) -> int | None:
        """A 5xx status to answer with instead of handling the request, or ``None``."""
        if not self._hit(self.settings.error_rate):
            return None
        return self._rng.choice(SERVER_ERRORS)

    def job_fate(self) -> tuple[bool, bool]:
        """``(will_fail, slow)`` for a newly submitted job."""
        return self._hit(self.settings.fail_job_rate), self._hit(self.settings.slow_job_rate)

    def snapshot(self) -> dict[str, Any]:
        storm_seconds = max(0.0, self._storm_until - self._clock())
        return {
            **self.settings.model_dump(),
            "storm_requests": self._storm_requests,
            "storm_seconds": storm_seconds,
        }
