"""What the emulator saw: a bounded request log and running counters.

Only the last four characters of an API key are ever kept, and only paths (never query
strings, which may carry a phone or an email) are logged.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

DROPPED = "dropped"
LOST = "lost_response"


def key_suffix(key: str | None) -> str | None:
    """Enough of a key to tell keys apart in a log, never enough to use it."""
    if not key:
        return None
    return "..." + key[-4:] if len(key) > 8 else "..."


@dataclass
class Journal:
    """The request log (newest last) and counts by endpoint and status."""

    size: int
    entries: deque[dict[str, Any]] = field(init=False)
    by_endpoint: dict[str, Counter[str]] = field(default_factory=dict)
    throttled: int = 0
    dropped: int = 0
    lost_responses: int = 0
    injected_errors: int = 0

    def __post_init__(self) -> None:
        self.entries = deque(maxlen=self.size)

    def record(
        self,
        request_id: int,
        when: float,
        method: str,
        path: str,
        endpoint: str,
        status: int | None,
        key: str | None,
        lost: bool = False,
    ) -> None:
        """Log one API request; ``status`` is ``None`` when the connection was dropped.

        ``lost``: the request was handled, then dropped; counted as dropped, and by endpoint
        as ``lost_response`` so a client's retries of accepted requests can be told apart.
        """
        outcome = LOST if lost else DROPPED if status is None else str(status)
        self.by_endpoint.setdefault(endpoint, Counter())[outcome] += 1
        self.throttled += status == 429
        self.dropped += status is None
        self.lost_responses += lost
        self.entries.append(
            {
                "id": request_id,
                "time": when,
                "method": method,
                "path": path,
                "endpoint": endpoint,
                "status": status,
                "key": key_suffix(key),
            }
        )

    def stats(self) -> dict[str, Any]:
        counts = {name: dict(counter) for name, counter in sorted(self.by_endpoint.items())}
        total = sum(sum(counter.values()) for counter in self.by_endpoint.values())
        return {
            "requests": total,
            "by_endpoint": counts,
            "throttled": self.throttled,
            "dropped": self.dropped,
            "lost_responses": self.lost_responses,
            "injected_errors": self.injected_errors,
        }
