"""What goes into the two queues and what comes out of them.

``NewDelta`` / ``NewEvent`` are enqueue inputs, checked on construction so a bad record is
refused before it reaches SQL. ``QueuedDelta`` / ``QueuedEvent`` are rows with their lease
bookkeeping.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, TypeVar

from sqlalchemy import RowMapping

from attentive_sync.domain.export_config import SLUG_RE
from attentive_sync.domain.loyalty.catalogue import EVENT_KEYS, WebhookEnvelope
from attentive_sync.store.errors import InvalidRecordError
from attentive_sync.store.tables import WRITE_KINDS

Action = Literal["enter", "exit"]
QueueState = Literal["pending", "leased", "inflight", "done", "quarantined"]

R = TypeVar("R", bound="QueuedRow")


def delta_key_for(audience: str, customer_id: int, action: str, occurred_at: datetime) -> str:
    """A stable key for a delta that came without one: the same change hashes the same,
    so re-sending it (a retried webhook, a re-run script) is stored once."""
    text = "\x1f".join((audience, str(customer_id), action, occurred_at.isoformat()))
    return hashlib.sha256(text.encode()).hexdigest()[:40]


def _check_common(customer_id: int, occurred_at: datetime) -> None:
    if isinstance(customer_id, bool) or not isinstance(customer_id, int) or customer_id < 1:
        raise InvalidRecordError(f"customer_id must be a positive integer, got {customer_id!r}")
    if occurred_at.tzinfo is None or occurred_at.utcoffset() is None:
        raise InvalidRecordError("occurred_at must carry a time zone")


@dataclass(frozen=True, slots=True)
class NewDelta:
    """Customer ``customer_id`` entered or exited ``audience`` at ``occurred_at``."""

    audience: str
    customer_id: int
    action: Action
    occurred_at: datetime
    delta_key: str | None = None

    def __post_init__(self) -> None:
        if len(self.audience) > 200 or not SLUG_RE.match(self.audience):
            raise InvalidRecordError(
                "audience must be a slug of 1 to 200 letters, digits, '_' or '-'"
            )
        if self.action not in ("enter", "exit"):
            raise InvalidRecordError(f"action must be 'enter' or 'exit', got {self.action!r}")
        _check_common(self.customer_id, self.occurred_at)

    @property
    def key(self) -> str:
        return self.delta_key or delta_key_for(
            self.audience, self.customer_id, self.action, self.occurred_at
        )

    def values(self) -> dict[str, Any]:
        """Column values for the ``audience_deltas`` row."""
        return {
            "delta_key": self.key,
            "audience": self.audience,
            "customer_id": self.customer_id,
            "action": self.action,
            "occurred_at": self.occurred_at,
        }


@dataclass(frozen=True, slots=True)
class NewEvent:
    """One loyalty event from the source, identified by the source's own event id."""

    event_id: str
    topic: str
    customer_id: int
    occurred_at: datetime
    payload: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.event_id or len(self.event_id) > 200:
            raise InvalidRecordError("event_id must be 1 to 200 characters")
        if self.topic not in EVENT_KEYS:
            raise InvalidRecordError(f"unknown loyalty event topic {self.topic!r}")
        _check_common(self.customer_id, self.occurred_at)

    @classmethod
    def from_envelope(cls, envelope: WebhookEnvelope) -> NewEvent:
        return cls(
            event_id=envelope.id,
            topic=envelope.topic.value,
            customer_id=envelope.customer_id,
            occurred_at=envelope.created_at,
            payload=dict(envelope.payload),
        )

    @property
    def key(self) -> str:
        return self.event_id

    def values(self) -> dict[str, Any]:
        """Column values for the ``loyalty_events`` row."""
        return {
            "event_id": self.event_id,
            "topic": self.topic,
            "customer_id": self.customer_id,
            "occurred_at": self.occurred_at,
            "payload": dict(self.payload),
        }


@dataclass(frozen=True, slots=True)
class NewWrite:
    """Custom attributes to write for one customer (a loyalty profile, a notice's figures).

    ``write_key`` makes enqueue idempotent: the same change enqueued twice is stored once.
    """

    write_key: str
    kind: Literal["profile", "reward_reminder", "expiry_notice"]
    customer_id: int
    attributes: Mapping[str, Any]
    occurred_at: datetime

    def __post_init__(self) -> None:
        if not self.write_key or len(self.write_key) > 200:
            raise InvalidRecordError("write_key must be 1 to 200 characters")
        if self.kind not in WRITE_KINDS:
            raise InvalidRecordError(
                f"write kind must be one of {', '.join(WRITE_KINDS)}, got {self.kind!r}"
            )
        if not self.attributes:
            raise InvalidRecordError("a write carries at least one attribute")
        _check_common(self.customer_id, self.occurred_at)

    @property
    def key(self) -> str:
        return self.write_key

    def values(self) -> dict[str, Any]:
        """Column values for the ``attribute_writes`` row."""
        return {
            "write_key": self.write_key,
            "kind": self.kind,
            "customer_id": self.customer_id,
            "attributes": dict(self.attributes),
            "occurred_at": self.occurred_at,
        }


@dataclass(frozen=True, slots=True)
class QueuedRow:
    """The queue bookkeeping every queued row carries."""

    seq: int
    customer_id: int
    occurred_at: datetime
    enqueued_at: datetime
    state: QueueState
    attempts: int
    lease_owner: str | None
    lease_expires_at: datetime | None
    next_attempt_at: datetime
    job_id: str | None
    last_error: str | None

    @classmethod
    def from_mapping(cls: type[R], row: RowMapping | Mapping[str, Any]) -> R:
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})


@dataclass(frozen=True, slots=True)
class QueuedDelta(QueuedRow):
    delta_key: str
    audience: str
    action: Action

    def quarantine_payload(self) -> dict[str, Any]:
        return {
            "delta_key": self.delta_key,
            "audience": self.audience,
            "customer_id": self.customer_id,
            "action": self.action,
            "occurred_at": self.occurred_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class QueuedEvent(QueuedRow):
    event_id: str
    topic: str
    payload: dict[str, Any]

    def quarantine_payload(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "topic": self.topic,
            "customer_id": self.customer_id,
            "occurred_at": self.occurred_at.isoformat(),
            "payload": self.payload,
        }


@dataclass(frozen=True, slots=True)
class QueuedWrite(QueuedRow):
    write_key: str
    kind: str
    attributes: dict[str, Any]

    def quarantine_payload(self) -> dict[str, Any]:
        return {
            "write_key": self.write_key,
            "kind": self.kind,
            "customer_id": self.customer_id,
            "attributes": self.attributes,
        }
