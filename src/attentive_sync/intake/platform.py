"""The shape of a loyalty-platform adapter: one module per platform, beside the project's
own envelope (``payloads``).

An adapter knows three things about its platform and nothing about HTTP or the queue:

* ``verify(headers, body)``: its signature scheme, over the raw body (raise
  ``SignatureRejected``); ``require_headers(headers)`` refuses a request with no signature
  header at all before its body is read;
* ``translate(document)``: its delivery (already parsed JSON, size and depth checked) to
  a ``Translated`` event (the project's event key, properties in the project's names and
  units, the time the event happened, who it is about) or an ``Acknowledged`` topic
  that is not an event (a profile update, a topic the project does not relay);
* ``name`` and ``path``: where the intake mounts it and the prefix of its event ids.

The intake does the rest the same way for every platform: size cap, content type,
signature, identity matching (``identity``), durable enqueue, the reused-id check.
LoyaltyLion is ``loyaltylion.py``; Smile or Yotpo would be one more module of this shape.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from attentive_sync.domain.loyalty.catalogue import EventKey


class DeliveryInvalid(ValueError):
    """A delivery the adapter cannot read; the message is one line, with no values."""


@dataclass(frozen=True)
class PlatformCustomer:
    """Who an event is about, in the platform's terms."""

    platform_id: int | None = None
    merchant_id: str | None = None
    email: str | None = None


@dataclass(frozen=True)
class Translated:
    """One platform delivery as one of the project's events."""

    event_id: str
    key: EventKey
    occurred_at: datetime
    properties: Mapping[str, Any]
    customer: PlatformCustomer
    platform_topic: str


@dataclass(frozen=True)
class Acknowledged:
    """A delivery answered 2xx and not queued as an event; ``kind`` is what it counts as."""

    event_id: str
    platform_topic: str
    kind: str  # "unknown_topic" | "profile_update"
    customer: PlatformCustomer | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)


class PlatformAdapter(Protocol):
    name: str
    path: str

    def require_headers(self, headers: Mapping[str, str]) -> None: ...

    def verify(self, headers: Mapping[str, str], body: bytes) -> None: ...

    def translate(self, document: dict[str, Any]) -> Translated | Acknowledged: ...
