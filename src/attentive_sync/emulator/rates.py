"""How fast each key called each endpoint: the proof that clients sharing a key share its limit.

Every request that reaches the rate limiter is counted, whether it was let through or
answered 429, in the one-second bin of the emulator's clock it arrived in, per key (its
last four characters only) and endpoint. Beside the bins, the busiest sliding second is
kept: the most arrivals within any one second, wherever it starts. A client that stays
under the limit keeps both at or below it; one that bounces off it shows arrivals above.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any


@dataclass
class _Series:
    bins: dict[int, int] = field(default_factory=dict)
    throttled: dict[int, int] = field(default_factory=dict)
    window: deque[float] = field(default_factory=deque)
    peak: int = 0

    def count(self, now: float, allowed: bool) -> None:
        second = math.floor(now)
        self.bins[second] = self.bins.get(second, 0) + 1
        if not allowed:
            self.throttled[second] = self.throttled.get(second, 0) + 1
        window = self.window
        window.append(now)
        while window[0] <= now - 1.0:
            window.popleft()
        self.peak = max(self.peak, len(window))

    def report(self, start: float) -> dict[str, Any]:
        first = min(self.bins)
        return {
            "arrivals": sum(self.bins.values()),
            "throttled": sum(self.throttled.values()),
            "busiest_second": max(self.bins.values()),
            "busiest_sliding_second": self.peak,
            # Seconds since the emulator started, so two reports line up.
            "per_second": {
                str(second - math.floor(start)): self.bins[second]
                for second in range(first, max(self.bins) + 1)
                if second in self.bins
            },
            "throttled_per_second": {
                str(second - math.floor(start)): n for second, n in sorted(self.throttled.items())
            },
        }


class RateCounter:
    """Arrivals per key and endpoint, in one-second bins and over a sliding second."""

    def __init__(self, start: float) -> None:
        self._start = start
        self._series: dict[tuple[str, str], _Series] = {}

    def count(self, key: str, endpoint: str, now: float, allowed: bool) -> None:
        series = self._series.get((key, endpoint))
        if series is None:
            series = self._series[(key, endpoint)] = _Series()
        series.count(now, allowed)

    def report(self) -> dict[str, dict[str, Any]]:
        """``{key suffix: {endpoint: figures}}``."""
        out: dict[str, dict[str, Any]] = {}
        for (key, endpoint), series in sorted(self._series.items()):
            out.setdefault(key, {})[endpoint] = series.report(self._start)
        return out
