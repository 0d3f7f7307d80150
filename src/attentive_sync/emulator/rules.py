"""Rules of ATTENTIVE_API.md that the JSON schemas do not express.

Each check raises :class:`RuleError` with a message that names the field and never quotes
its value (values are personal data). Callers run these only after the schema check passed,
so types are already right here.

Limits chosen where the contract is vague (emulator decisions):

* custom attribute names: 1..200 characters (the v1 contract's stated maximum);
* emails: ``local@domain.tld`` with no spaces (the contract gives no format);
* event property keys are checked at every nesting level, not only the top.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

E164 = re.compile(r"^\+[1-9]\d{6,14}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
RFC3339 = re.compile(r"^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
MAX_CLIENT_USER_ID = 100
MAX_ATTRIBUTE_NAME = 200
EVENT_TYPE_FORBIDDEN = frozenset("\"'(){}[]\\|,")
PROPERTY_KEY_FORBIDDEN = frozenset('"{}[]\\|')
V2_IDENTIFIERS = ("phone", "email", "clientUserId", "shopifyId", "klaviyoId")
_PLAIN_IDENTIFIERS = frozenset({"shopifyId", "klaviyoId"})


class RuleError(ValueError):
    """A request part breaks a documented rule; the message is safe to return and log."""


def check_not_empty(value: str, where: str) -> None:
    if not value.strip():
        raise RuleError(f"{where} must not be empty")


def check_phone(value: str, where: str) -> None:
    """Phones travel in E.164: a plus, a non-zero digit, then 6 to 14 digits."""
    if not E164.match(value):
        raise RuleError(f"{where} must be an E.164 phone number such as +14155552671")


def check_email(value: str, where: str) -> None:
    if not EMAIL.match(value):
        raise RuleError(f"{where} must be an email address")


def _check_client_user_id(value: str, where: str) -> None:
    check_not_empty(value, where)
    if len(value) > MAX_CLIENT_USER_ID:
        raise RuleError(f"{where} is longer than {MAX_CLIENT_USER_ID} characters")


def _check_custom_identifiers(items: list[dict[str, str]], name_key: str, where: str) -> None:
    for i, item in enumerate(items):
        for field in (name_key, "value"):
            if field not in item:
                raise RuleError(f"{where}[{i}].{field} is required")
            check_not_empty(item[field], f"{where}[{i}].{field}")


def check_v2_identifiers(ids: Mapping[str, Any]) -> None:
    """Bulk and single-user identifiers: at least one, none empty, each well formed."""
    for name in V2_IDENTIFIERS:
        if name in ids:
            check_not_empty(ids[name], f"identifiers.{name}")
    if "phone" in ids:
        check_phone(ids["phone"], "identifiers.phone")
    if "email" in ids:
        check_email(ids["email"], "identifiers.email")
    if "clientUserId" in ids:
        _check_client_user_id(ids["clientUserId"], "identifiers.clientUserId")
    customs = ids.get("customIdentifiers", [])
    _check_custom_identifiers(customs, "key", "identifiers.customIdentifiers")
    if not customs and not any(name in ids for name in V2_IDENTIFIERS):
        raise RuleError("identifiers needs at least one identifier")


def v2_user_plainly_valid(ids: Mapping[str, Any], attributes: Mapping[str, Any]) -> bool:
    """A quick accept for the common bulk user, run once per user of every bulk request.

    ``True`` only when :func:`check_v2_identifiers` and :func:`check_attributes` would both
    pass; ``False`` means "not sure": the caller runs them, and they name the problem. Every
    test here is one of theirs or implies one (a phone matching ``E164`` is not blank).
    """
    if not ids:
        return False
    for name, value in ids.items():
        if name == "phone":
            if E164.match(value) is None:
                return False
        elif name == "email":
            if EMAIL.match(value) is None:
                return False
        elif name == "clientUserId":
            if len(value) > MAX_CLIENT_USER_ID or not value.strip():
                return False
        elif name not in _PLAIN_IDENTIFIERS or not value.strip():
            return False  # customIdentifiers (and anything unforeseen): the full check decides
    demographic = attributes.get("demographic")
    if demographic is not None and "dateOfBirth" in demographic:
        return False
    custom = attributes.get("custom")
    if custom:
        for name, value in custom.items():
            if value is None or isinstance(value, (list, dict)):
                return False
            if len(name) > MAX_ATTRIBUTE_NAME or not name.strip():
                return False
    return True


def check_event_user(user: Mapping[str, Any]) -> None:
    """v1 users: phone, email or external identifiers (``{name, value}`` custom ones)."""
    if "phone" in user:
        check_phone(user["phone"], "user.phone")
    if "email" in user:
        check_email(user["email"], "user.email")
    external = user.get("externalIdentifiers", {})
    if "clientUserId" in external:
        _check_client_user_id(external["clientUserId"], "user.externalIdentifiers.clientUserId")
    customs = external.get("customIdentifiers", [])
    _check_custom_identifiers(customs, "name", "user.externalIdentifiers.customIdentifiers")
    if not ("phone" in user or "email" in user or "clientUserId" in external or customs):
        raise RuleError("user needs a phone, an email or an external identifier")


def check_custom_values(custom: Mapping[str, Any], where: str) -> None:
    """Custom attributes are a flat map of name -> string, number or boolean."""
    for name, value in custom.items():
        if not name.strip() or len(name) > MAX_ATTRIBUTE_NAME:
            raise RuleError(f"{where} names must have 1 to {MAX_ATTRIBUTE_NAME} characters")
        if value is None or isinstance(value, (list, dict)):
            raise RuleError(f"{where}.{name} must be a string, number or boolean")


def check_attributes(attributes: Mapping[str, Any]) -> None:
    """Typed attributes: dateOfBirth as a real YYYY-MM-DD date, custom values flat."""
    dob = attributes.get("demographic", {}).get("dateOfBirth")
    if dob is not None and not _is_iso_date(dob):
        raise RuleError("attributes.demographic.dateOfBirth must be a date as YYYY-MM-DD")
    check_custom_values(attributes.get("custom", {}), "attributes.custom")


def _is_iso_date(value: str) -> bool:
    if not ISO_DATE.match(value):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def check_event_type(value: str) -> None:
    check_not_empty(value, "type")
    if EVENT_TYPE_FORBIDDEN & set(value):
        raise RuleError("type must not contain \" ' ( ) { } [ ] \\ | or ,")


def check_property_keys(properties: Any, where: str = "properties") -> None:
    """Event property keys must not contain `` " { } [ ] \\ | `` (nested keys included)."""
    if isinstance(properties, dict):
        for key, value in properties.items():
            if PROPERTY_KEY_FORBIDDEN & set(key):
                raise RuleError(f'{where} keys must not contain " {{ }} [ ] \\ or |')
            check_property_keys(value, where)
    elif isinstance(properties, list):
        for item in properties:
            check_property_keys(item, where)


def check_rfc3339(value: str, where: str) -> None:
    """RFC 3339 timestamps with a required offset (``Z`` or ``+hh:mm``), real calendar values."""
    match = RFC3339.match(value)
    if match is None:
        raise RuleError(f"{where} must be an RFC 3339 timestamp with an offset")
    day, clock, _, offset = match.groups()
    offset = "+00:00" if offset in ("Z", "z") else offset
    try:
        datetime.fromisoformat(f"{day}T{clock}{offset}")
    except ValueError as exc:
        raise RuleError(f"{where} is not a real date and time") from exc
