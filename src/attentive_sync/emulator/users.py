"""The emulated user store: users matched by any identifier, attributes merged, types fixed.

Built to hold a million users in modest memory: each user is one compact JSON ``bytes``
record, and each identifier kind has one ``value -> user number`` index. Decoding happens
only when a known user is updated or inspected.

Identity rules (emulator decisions where the contract is silent):

* an incoming user is matched by its first identifier already known, in the order phone,
  email, clientUserId, shopifyId, klaviyoId, custom identifiers;
* an identifier already owned by another user stays with that user (no silent bridging);
* a new value of an identifier kind replaces the user's old value for that kind.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson

IDENTIFIER_KINDS = ("phone", "email", "clientUserId", "shopifyId", "klaviyoId")
_CUSTOM = "custom:"


_TYPE_NAMES = {bool: "boolean", int: "number", float: "number", str: "string"}


def attribute_type(value: Any) -> str:
    """The type Attentive fixes for a custom attribute from a value."""
    return _TYPE_NAMES[type(value)]


class AttributeTypes:
    """Custom attribute name -> type, fixed by the first value ever accepted for the name."""

    def __init__(self) -> None:
        self._types: dict[str, str] = {}

    def accept(self, custom: Mapping[str, Any]) -> str | None:
        """Fix the types of new names, or return why a value breaks a fixed type (no change)."""
        new: list[tuple[str, str]] = []
        for name, value in custom.items():
            got = _TYPE_NAMES[type(value)]
            fixed = self._types.get(name)
            if fixed is None:
                new.append((name, got))
            elif fixed != got:
                return f"custom attribute '{name}' is typed {fixed}, got a {got}"
        self._types.update(new)
        return None

    def snapshot(self) -> dict[str, str]:
        return dict(self._types)


def _pairs(identifiers: Mapping[str, Any]) -> list[tuple[str, str]]:
    pairs = [(kind, identifiers[kind]) for kind in IDENTIFIER_KINDS if kind in identifiers]
    custom = identifiers.get("custom")
    if custom:
        pairs += [(_CUSTOM + name, value) for name, value in custom.items()]
    return pairs


def _stored(identifiers: dict[str, Any], kind: str) -> str | None:
    if kind.startswith(_CUSTOM):
        return identifiers.get("custom", {}).get(kind[len(_CUSTOM) :])
    return identifiers.get(kind)


def _store(identifiers: dict[str, Any], kind: str, value: str) -> None:
    if kind.startswith(_CUSTOM):
        identifiers.setdefault("custom", {})[kind[len(_CUSTOM) :]] = value
    else:
        identifiers[kind] = value


def merge_attributes(stored: dict[str, Any], incoming: Mapping[str, Any]) -> None:
    """Scalars replace; sub-objects (demographic, location, locale, custom) merge by key."""
    for key, value in incoming.items():
        if isinstance(value, dict):
            stored[key] = {**stored.get(key, {}), **value}
        else:
            stored[key] = value


class UserStore:
    """All users the emulator knows. Not thread-safe: the emulator state holds the lock."""

    def __init__(self) -> None:
        self._records: list[bytes] = []
        self._index: dict[str, dict[str, int]] = {}
        self.types = AttributeTypes()

    def __len__(self) -> int:
        return len(self._records)

    def find(self, identifiers: Mapping[str, Any]) -> int | None:
        """The number of the first user owning one of these identifiers."""
        return self._owner(_pairs(identifiers))

    def _owner(self, pairs: list[tuple[str, str]]) -> int | None:
        indexes = self._index
        for kind, value in pairs:
            index = indexes.get(kind)
            if index is not None and value in index:
                return index[value]
        return None

    def upsert(self, identifiers: Mapping[str, Any], attributes: Mapping[str, Any]) -> str | None:
        """Create or update one user; a custom type conflict rejects it whole (message)."""
        custom = attributes.get("custom")
        if custom:
            conflict = self.types.accept(custom)
            if conflict is not None:
                return conflict
        pairs = _pairs(identifiers)
        number = self._owner(pairs)
        if number is None:
            self._create(pairs, identifiers, attributes)
        else:
            self._update(number, pairs, attributes)
        return None

    def _create(
        self,
        pairs: list[tuple[str, str]],
        identifiers: Mapping[str, Any],
        attributes: Mapping[str, Any],
    ) -> None:
        # No identifier has an owner yet (that is what made the user new), so all index as-is.
        number = len(self._records)
        indexes = self._index
        for kind, value in pairs:
            index = indexes.get(kind)
            if index is None:
                index = indexes[kind] = {}
            index[value] = number
        record = {"identifiers": identifiers, "attributes": attributes}
        self._records.append(orjson.dumps(record))

    def _update(
        self, number: int, pairs: list[tuple[str, str]], attributes: Mapping[str, Any]
    ) -> None:
        record = orjson.loads(self._records[number])
        stored = record["identifiers"]
        for kind, value in pairs:
            index = self._index.setdefault(kind, {})
            if value in index:
                continue
            old = _stored(stored, kind)
            if old is not None and index.get(old) == number:
                del index[old]
            _store(stored, kind, value)
            index[value] = number
        merge_attributes(record["attributes"], attributes)
        self._records[number] = orjson.dumps(record)

    def get(self, number: int) -> dict[str, Any]:
        """One user as ``{"id", "identifiers", "attributes"}``."""
        return {"id": number, **orjson.loads(self._records[number])}

    def lookup(self, kind: str, value: str) -> int | None:
        return self._index.get(kind, {}).get(value)

    def numbers(self, filters: Mapping[str, str]) -> Sequence[int]:
        """User numbers matching every ``kind=value`` filter (all users when none)."""
        if not filters:
            return range(len(self._records))
        found = {self.lookup(kind, value) for kind, value in filters.items()}
        return [number for number in found if number is not None] if len(found) == 1 else []


def identifiers_from_v2(identifiers: Mapping[str, Any]) -> dict[str, Any]:
    """Bulk/v2 identifiers (custom ones as ``{key, value}``) in the store's form."""
    out = {kind: identifiers[kind] for kind in IDENTIFIER_KINDS if kind in identifiers}
    customs = identifiers.get("customIdentifiers")
    if customs:
        out["custom"] = {item["key"]: item["value"] for item in customs}
    return out


def identifiers_from_v1(user: Mapping[str, Any]) -> dict[str, Any]:
    """A v1 event user (custom identifiers as ``{name, value}``) in the store's form."""
    out = {kind: user[kind] for kind in ("phone", "email") if kind in user}
    external = user.get("externalIdentifiers", {})
    if "clientUserId" in external:
        out["clientUserId"] = external["clientUserId"]
    customs = external.get("customIdentifiers")
    if customs:
        out["custom"] = {item["name"]: item["value"] for item in customs}
    return out
