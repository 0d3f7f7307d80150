"""Builders shared by the store tests."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from attentive_sync.store import NewDelta, NewEvent

T0 = datetime(2025, 6, 1, 12, 0, tzinfo=timezone.utc)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def delta(customer: int, action: str = "enter", audience: str = "vip", minute: int = 0) -> NewDelta:
    return NewDelta(audience, customer, action, T0 + timedelta(minutes=minute))  # type: ignore[arg-type]


def event(event_id: str, customer: int = 1, topic: str = "reward_available") -> NewEvent:
    payload = {"reward": "10% off", "email": "jane@example.com"}
    return NewEvent(event_id, topic, customer, T0, payload)
