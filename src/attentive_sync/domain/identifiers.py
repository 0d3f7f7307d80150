"""Attentive identifiers: who a record is about.

Phones are normalised to E.164 with ``phonenumbers`` (a default region turns national numbers
into international ones); emails are checked with ``email-validator`` (syntax only: no DNS, no
deliverability) and lower-cased; empty and whitespace-only values are dropped, never sent. An
invalid email is left out of a user who has another identifier (``Identifiers.dropped`` says
so, for the run report); a user with nothing usable left is rejected.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from pydantic import BaseModel, ConfigDict, Field

from attentive_sync.domain.errors import (
    INVALID_EMAIL,
    INVALID_IDENTIFIER,
    INVALID_PHONE,
    NO_IDENTIFIER,
    RecordRejected,
)
from attentive_sync.masking import mask_text

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
    # Names of identifiers the source had but that were left out as invalid (never sent).
    dropped: tuple[str, ...] = ()

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


# A local part of letters, digits, ``_ + -`` in dot-separated runs: the library accepts every
# such part as written, within its length limits. Anything else goes to the library.
_PLAIN_LOCAL = re.compile(r"[a-z0-9_+-]+(?:\.[a-z0-9_+-]+)*\Z")
_MAX_LOCAL = 64
_MAX_ADDRESS = 254


@lru_cache(maxsize=65536)
def _plain_domain(domain: str) -> bool:
    """Whether the library accepts ``domain`` (lower-case ASCII) as it is, for any address."""
    if not domain.isascii():
        return False
    try:
        checked = validate_email(f"a@{domain}", check_deliverability=False)
    except EmailNotValidError:
        return False
    return checked.domain == domain


def normalize_email(raw: str) -> str:
    """Return ``raw`` trimmed, checked and lower-cased, or raise ``RecordRejected``.

    The syntax rules are ``email-validator``'s (the library pydantic uses), without DNS or
    deliverability checks: ``two@@example.com`` and ``a@example.`` are refused here rather
    than by Attentive after a round trip. The whole address is lower-cased (SCHEMA.md), so
    one person's addresses in two spellings are one identifier.
    """
    text = raw.strip().lower()
    local, at, domain = text.rpartition("@")
    if (
        at
        and len(local) <= _MAX_LOCAL
        and len(text) <= _MAX_ADDRESS
        and _PLAIN_LOCAL.match(local)
        and _plain_domain(domain)
    ):
        # The common case, decided without the library's per-address work: a plain local part
        # at a domain the library has already accepted, unchanged, as a whole address's domain.
        # tests/domain/test_email_fast_path.py proves it equal to the library's answer.
        return text
    try:
        checked = validate_email(raw.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise RecordRejected(
            INVALID_EMAIL, f"email is not an address ({mask_text(str(exc)).rstrip('.')})"
        ) from exc
    return checked.normalized.lower()


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
    ``klaviyoId``); ``custom`` maps custom identifier keys to values. A present but invalid
    phone rejects the record: a number is how Attentive reaches the person, and one that
    cannot be read may be someone else's. An invalid email is left out (named in
    ``dropped``) when another identifier remains, and rejects the record when none does.
    """
    unknown = set(fields) - set(STANDARD_IDENTIFIERS)
    if unknown:
        raise ValueError(f"unknown identifier name(s): {', '.join(sorted(unknown))}")
    phone = _clean(fields.get("phone"))
    raw_email = _clean(fields.get("email"))
    email, email_error = None, None
    if raw_email is not None:
        try:
            email = normalize_email(raw_email)
        except RecordRejected as exc:
            email_error = exc
    customs = tuple(
        CustomIdentifier(key=key, value=_bounded(key, text) or "")
        for key, value in (custom or {}).items()
        if (text := _clean(value)) is not None
    )
    ids = Identifiers(
        phone=normalize_phone(phone, region) if phone else None,
        email=email,
        client_user_id=_bounded("clientUserId", _clean(fields.get("clientUserId"))),
        shopify_id=_bounded("shopifyId", _clean(fields.get("shopifyId"))),
        klaviyo_id=_bounded("klaviyoId", _clean(fields.get("klaviyoId"))),
        custom=customs,
        dropped=("email",) if email_error else (),
    )
    if not ids.to_wire():
        if email_error is not None:
            raise RecordRejected(
                email_error.code, f"{email_error.detail}; the record has no other identifier"
            )
        raise RecordRejected(NO_IDENTIFIER, "no usable identifier (phone, email, ids all empty)")
    return ids
