"""Attentive custom events: the v1 ``POST /v1/events/custom`` body as frozen models.

Attentive rejects a whole event for one bad character in its type or in a property key, and
an event type is a journey trigger that cannot be renamed later, so both rules are checked
here, before anything reaches the wire.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

import phonenumbers
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import to_jsonable_python

from attentive_sync.domain.errors import NO_IDENTIFIER, RecordRejected
from attentive_sync.domain.identifiers import Identifiers

TYPE_FORBIDDEN_CHARS = frozenset("\"'(){}[]\\|,")
PROPERTY_KEY_FORBIDDEN_CHARS = frozenset('"{}[]\\|')

# Attentive's event user has no shopifyId/klaviyoId field (additionalProperties: false), so
# those identifiers travel as namespaced custom identifiers under these names.
SHOPIFY_ID_NAME = "shopifyId"
KLAVIYO_ID_NAME = "klaviyoId"


def _shown(chars: set[str]) -> str:
    return " ".join(sorted(chars))


def check_event_type(value: str) -> str:
    """Return ``value`` if Attentive accepts it as a custom-event type, else raise ValueError."""
    if not value.strip():
        raise ValueError("event type must not be empty")
    bad = set(value) & TYPE_FORBIDDEN_CHARS
    if bad:
        raise ValueError(f"event type must not contain {_shown(bad)}")
    return value


def check_property_keys(properties: Mapping[str, Any], path: str = "properties") -> None:
    """Raise ValueError naming the first key (nested ones too) Attentive would refuse."""
    for key, value in properties.items():
        if not isinstance(key, str) or not key:
            raise ValueError(f"{path} keys must be non-empty strings")
        bad = set(key) & PROPERTY_KEY_FORBIDDEN_CHARS
        if bad:
            raise ValueError(f"{path} key {key!r} must not contain {_shown(bad)}")
        for child in value if isinstance(value, list) else [value]:
            if isinstance(child, Mapping):
                check_property_keys(child, f"{path}.{key}")


def rfc3339_utc(moment: datetime) -> str:
    """``2021-03-30T14:38:29.000Z``: UTC with millisecond precision, as Attentive's example."""
    text = moment.astimezone(timezone.utc).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


class EventIdentifier(BaseModel):
    """One namespaced custom identifier of an event user (``{name, value}`` on the wire)."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(min_length=1)
    value: str = Field(min_length=1)


class EventUser(BaseModel):
    """Who the event is about: only the identifiers Attentive's event ``user`` accepts."""

    model_config = ConfigDict(frozen=True)

    phone: str | None = None
    email: str | None = Field(None, min_length=1)
    client_user_id: str | None = Field(None, min_length=1)
    custom: tuple[EventIdentifier, ...] = ()

    @field_validator("phone")
    @classmethod
    def _e164(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            parsed = phonenumbers.parse(value, None)
        except phonenumbers.NumberParseException as exc:
            raise ValueError("phone must be in E.164 format") from exc
        if phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164) != value:
            raise ValueError("phone must be in E.164 format")
        return value

    @classmethod
    def from_identifiers(cls, ids: Identifiers) -> EventUser:
        """Carry every identifier the event user can hold; raise if none is left."""
        custom = [EventIdentifier(name=c.key, value=c.value) for c in ids.custom]
        for name, value in ((SHOPIFY_ID_NAME, ids.shopify_id), (KLAVIYO_ID_NAME, ids.klaviyo_id)):
            if value:
                custom.append(EventIdentifier(name=name, value=value))
        user = cls(
            phone=ids.phone or None,
            email=ids.email or None,
            client_user_id=ids.client_user_id or None,
            custom=tuple(custom),
        )
        if not user.to_wire():
            raise RecordRejected(NO_IDENTIFIER, "no identifier the event user accepts")
        return user

    @property
    def external_only(self) -> bool:
        """Known to Attentive by external identifiers alone: the event reaches a person only
        once those identifiers were linked to a phone or email."""
        return not self.phone and not self.email

    def to_wire(self) -> dict[str, Any]:
        """The v1 ``user`` object; absent identifiers are omitted, never null."""
        external: dict[str, Any] = {}
        if self.client_user_id:
            external["clientUserId"] = self.client_user_id
        if self.custom:
            external["customIdentifiers"] = [
                {"name": c.name, "value": c.value} for c in self.custom
            ]
        wire: dict[str, Any] = {}
        if self.phone:
            wire["phone"] = self.phone
        if self.email:
            wire["email"] = self.email
        if external:
            wire["externalIdentifiers"] = external
        return wire


class CustomEvent(BaseModel):
    """One custom event, valid by construction against Attentive's v1 rules."""

    model_config = ConfigDict(frozen=True)

    type: str
    user: EventUser
    properties: dict[str, Any] = Field(default_factory=dict)
    external_event_id: str = Field(min_length=1, max_length=200)
    occurred_at: datetime

    @field_validator("type")
    @classmethod
    def _type(cls, value: str) -> str:
        return check_event_type(value)

    @field_validator("user")
    @classmethod
    def _user(cls, value: EventUser) -> EventUser:
        if not value.to_wire():
            raise ValueError("user needs a phone, an email or an external identifier")
        return value

    @field_validator("properties")
    @classmethod
    def _properties(cls, value: dict[str, Any]) -> dict[str, Any]:
        check_property_keys(value)
        return value

    @field_validator("occurred_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("occurred_at must carry a timezone offset")
        return value

    def to_wire(self) -> dict[str, Any]:
        """The exact v1 JSON body; empty properties are omitted rather than sent as ``{}``."""
        wire: dict[str, Any] = {"type": self.type, "user": self.user.to_wire()}
        if self.properties:
            wire["properties"] = to_jsonable_python(self.properties)
        wire["externalEventId"] = self.external_event_id
        wire["occurredAt"] = rfc3339_utc(self.occurred_at)
        return wire
