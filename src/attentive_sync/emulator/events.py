"""Custom events as received: stored once per ``externalEventId``, duplicates counted.

``externalEventId`` is the client's idempotency key, so a retried delivery must not become a
second event; the count of deliveries stays visible, so a test can prove retries happened.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class EventStore:
    """Events in arrival order; events without an ``externalEventId`` are never duplicates."""

    def __init__(self) -> None:
        self._events: list[dict[str, Any]] = []
        self._by_external_id: dict[str, dict[str, Any]] = {}
        self.duplicates = 0

    def __len__(self) -> int:
        return len(self._events)

    def add(self, body: Mapping[str, Any], received_at: float) -> bool:
        """Store an event; ``False`` when it repeats an ``externalEventId`` already stored."""
        external_id = body.get("externalEventId")
        known = self._by_external_id.get(external_id) if external_id is not None else None
        if known is not None:
            known["deliveries"] += 1
            self.duplicates += 1
            return False
        event = {**body, "receivedAt": received_at, "deliveries": 1}
        self._events.append(event)
        if external_id is not None:
            self._by_external_id[external_id] = event
        return True

    def select(self, event_type: str | None = None) -> list[dict[str, Any]]:
        return [dict(e) for e in self._events if event_type is None or e["type"] == event_type]
