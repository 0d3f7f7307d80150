"""Attentive user attributes: the typed well-known ones and flat custom ones.

Attentive fixes a custom attribute's type by the first value it ever sees, and rejects arrays
and objects in ``custom``; both rules are enforced here, before anything is sent. Text is
trimmed, and a value that is empty or only whitespace is dropped, never sent: an empty string
would blank the field at Attentive.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from attentive_sync.domain.errors import INVALID_ATTRIBUTE, RecordRejected

MAX_ATTRIBUTE_NAME = 200  # the v1 contract's maximum
Scalar = str | int | float | bool

# Flat name users map to -> (group in the v2 body, key in the group, type).
WELL_KNOWN: dict[str, tuple[str | None, str, type]] = {
    "firstName": (None, "firstName", str),
    "lastName": (None, "lastName", str),
    "language": ("demographic", "language", str),
    "dateOfBirth": ("demographic", "dateOfBirth", date),
    "age": ("demographic", "age", int),
    "organization": ("demographic", "organization", str),
    "title": ("demographic", "title", str),
    "website": ("demographic", "website", str),
    "address1": ("location", "address1", str),
    "address2": ("location", "address2", str),
    "city": ("location", "city", str),
    "state": ("location", "state", str),
    "zip": ("location", "zip", str),
    "latitude": ("location", "latitude", str),
    "longitude": ("location", "longitude", str),
    "country": ("location", "country", str),
    "region": ("location", "region", str),
    "timezone": ("location", "timezone", str),
    "localeLanguage": ("locale", "language", str),
    "localeCountry": ("locale", "country", str),
}

AttributeType = Literal["string", "number", "boolean"]


def attribute_type(value: Scalar) -> AttributeType:
    """Attentive's type for a custom value (bool is checked first: it is an int in Python)."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "string"


def _is_missing(value: object) -> bool:
    """None, NaN, and text that is empty or only whitespace (``"  "`` is no state)."""
    if isinstance(value, str):
        return not value.strip()
    return value is None or (isinstance(value, float) and math.isnan(value))


def _as_date(name: str, value: object) -> str:
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    try:
        return date.fromisoformat(str(value).strip()[:10]).isoformat()
    except ValueError as exc:
        raise RecordRejected(INVALID_ATTRIBUTE, f"{name} must be a date (YYYY-MM-DD)") from exc


def _as_type(name: str, value: object, kind: type) -> Any:
    if kind is date:
        return _as_date(name, value)
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise RecordRejected(INVALID_ATTRIBUTE, f"{name} must be a whole number")
        try:
            return int(value)
        except ValueError as exc:
            raise RecordRejected(INVALID_ATTRIBUTE, f"{name} must be a whole number") from exc
    return str(value).strip()


def custom_value(name: str, value: object) -> Scalar | None:
    """Coerce one custom attribute value to what Attentive accepts, or reject it.

    Lists become comma-separated text; dates become ISO-8601 text; objects are rejected.
    """
    if not name or len(name) > MAX_ATTRIBUTE_NAME:
        raise RecordRejected(
            INVALID_ATTRIBUTE, f"custom attribute name must be 1..{MAX_ATTRIBUTE_NAME} characters"
        )
    if _is_missing(value):
        return None
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        if math.isinf(value):
            raise RecordRejected(INVALID_ATTRIBUTE, f"custom attribute {name!r} is not finite")
        return value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list | tuple | set | frozenset):
        items = [str(item).strip() for item in value if not _is_missing(item)]
        if any(isinstance(item, Mapping | list) for item in value):
            raise RecordRejected(INVALID_ATTRIBUTE, f"custom attribute {name!r} nests a list")
        return ",".join(items) if items else None
    raise RecordRejected(
        INVALID_ATTRIBUTE,
        f"custom attribute {name!r} is a {type(value).__name__}; need a primitive",
    )


class Attributes(BaseModel):
    """Well-known attributes (flat names, see ``WELL_KNOWN``) and custom ones, already clean."""

    model_config = ConfigDict(frozen=True)

    well_known: dict[str, Any] = {}
    custom: dict[str, Scalar] = {}

    def to_wire(self) -> dict[str, Any]:
        """The v2 ``attributes`` object; empty groups are omitted."""
        wire: dict[str, Any] = {}
        for name, value in self.well_known.items():
            group, key, _ = WELL_KNOWN[name]
            target = wire if group is None else wire.setdefault(group, {})
            target[key] = value
        if self.custom:
            wire["custom"] = dict(self.custom)
        return wire


def build_attributes(
    well_known: Mapping[str, object] | None = None,
    custom: Mapping[str, object] | None = None,
) -> Attributes:
    """Validate and coerce attribute values; missing values are dropped, never sent as null."""
    clean_known: dict[str, Any] = {}
    for name, value in (well_known or {}).items():
        if name not in WELL_KNOWN:
            raise ValueError(f"unknown attribute {name!r}; known: {', '.join(WELL_KNOWN)}")
        if not _is_missing(value):
            clean_known[name] = _as_type(name, value, WELL_KNOWN[name][2])
    clean_custom = {
        name: coerced
        for name, value in (custom or {}).items()
        if (coerced := custom_value(name, value)) is not None
    }
    return Attributes(well_known=clean_known, custom=clean_custom)
