"""Attentive identifiers: who a record is about.

Phones are normalised to E.164 with ``phonenumbers`` (a default region turns national numbers
into international ones); empty values are dropped, never sent; a user with nothing usable left
is rejected.
"""

from __future__ import annotations

from collections.abc import Mapping

import phonenumbers
from pydantic import BaseModel, ConfigDict, Field

from attentive_sync.domain.errors import (
    INVALID_IDENTIFIER,
    INVALID_PHONE,
    NO_IDENTIFIER,
    RecordRejected,
)

MAX_ID_LENGTH = 100
STANDARD_IDENTIFIERS = ("phone", "email", "clientUserId", "shopifyId", "klaviyoId")


class CustomIdentifier(BaseModel):
    model_config = ConfigDict(frozen=True)

    key: str = Field(min_length=1, max_length=MAX_ID_LENGTH)
    value: str = Field(min_length=1, max_length=MAX_ID_LENGTH)


class Identifiers(BaseModel):
    """The identifiers of one user, already clean: E.164 phone, no empty values."""

    model_config = ConfigDict(frozen=True)

    phone: str | None = None
    email: str | None = None
    client_user_id: str | None = Field(None, max_length=MAX_ID_LENGTH)
    shopify_id: str | None = Field(None, max_length=MAX_ID_LENGTH)
    klaviyo_id: str | None = Field(None, max_length=MAX_ID_LENGTH)
    custom: tuple[CustomIdentifier, ...] = ()

    def to_wire(self) -> dict[str, object]:
        """The v2 bulk ``identifiers`` object; absent identifiers are omitted, never null."""
        wire: dict[str, object] = {}
        for name, value in (
            ("phone", self.phone),
            ("email", self.email),
            ("clientUserId", self.client_user_id),
            ("shopifyId", self.shopify_id),
            ("klaviyoId", self.klaviyo_id),
        ):
            if value:
                wire[name] = value
        if self.custom:
            wire["customIdentifiers"] = [{"key": c.key, "value": c.value} for c in self.custom]
        return wire


def normalize_phone(raw: str, region: str = "US") -> str:
    """Return ``raw`` as E.164, or raise ``RecordRejected`` if it can never be a valid number."""
    try:
        parsed = phonenumbers.parse(raw, region.upper())
    except phonenumbers.NumberParseException as exc:
        raise RecordRejected(INVALID_PHONE, "phone cannot be parsed as a number") from exc
    if not phonenumbers.is_valid_number(parsed):
        raise RecordRejected(INVALID_PHONE, "phone is not a valid number for any region")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def normalize_email(raw: str) -> str:
    """Trim and check the one rule every address shares: a local part, an @, a dotted domain."""
    email = raw.strip()
    local, sep, domain = email.rpartition("@")
    if not sep or not local or "." not in domain or " " in email or domain.startswith("."):
        raise RecordRejected(INVALID_IDENTIFIER, "email is not an address")
    return email


def _clean(value: object) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _bounded(name: str, value: str | None) -> str | None:
    if value is not None and len(value) > MAX_ID_LENGTH:
        raise RecordRejected(
            INVALID_IDENTIFIER, f"{name} is longer than {MAX_ID_LENGTH} characters"
        )
    return value


def build_identifiers(
    fields: Mapping[str, object],
    region: str = "US",
    custom: Mapping[str, object] | None = None,
) -> Identifiers:
    """Build clean identifiers from already-mapped values keyed by Attentive identifier name.

    ``fields`` uses Attentive names (``phone``, ``email``, ``clientUserId``, ``shopifyId``,
    ``klaviyoId``); ``custom`` maps custom identifier keys to values. A present but invalid phone
    or email rejects the record: sending the user without it could attach the attributes to
    the wrong profile, or to none.
    """
    unknown = set(fields) - set(STANDARD_IDENTIFIERS)
    if unknown:
        raise ValueError(f"unknown identifier name(s): {', '.join(sorted(unknown))}")
    phone = _clean(fields.get("phone"))
    email = _clean(fields.get("email"))
    customs = tuple(
        CustomIdentifier(key=key, value=_bounded(key, text) or "")
        for key, value in (custom or {}).items()
        if (text := _clean(value)) is not None
    )
    ids = Identifiers(
        phone=normalize_phone(phone, region) if phone else None,
        email=normalize_email(email) if email else None,
        client_user_id=_bounded("clientUserId", _clean(fields.get("clientUserId"))),
        shopify_id=_bounded("shopifyId", _clean(fields.get("shopifyId"))),
        klaviyo_id=_bounded("klaviyoId", _clean(fields.get("klaviyoId"))),
        custom=customs,
    )
    if not ids.to_wire():
        raise RecordRejected(NO_IDENTIFIER, "no usable identifier (phone, email, ids all empty)")
    return ids
