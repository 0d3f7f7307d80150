"""Customer rows straight to the wire shape of a bulk user record, for the hot paths.

``mapping.Mapper`` builds typed models (``Identifiers``, ``Attributes``, ``BulkUser``) and
then their wire dicts; on a backfill of a million members the models cost more than the
rest of the engine. ``WireMapper`` produces the same dict directly, by calling the same
domain functions in the same order (cleaning, ``normalize_phone`` behind the phone fast
path, ``normalize_email``, the attribute coercions), so a record is refused with the same
reason either way. What it cannot vouch for goes through the typed path: custom
identifiers (validated by their model) and values of unusual types.
``tests/engine/test_wire.py`` proves the two agree on generated rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from attentive_sync.domain.attributes import WELL_KNOWN, _as_type, _is_missing, custom_value
from attentive_sync.domain.errors import NO_IDENTIFIER, RecordRejected
from attentive_sync.domain.export_config import ExportConfig
from attentive_sync.domain.identifiers import (
    STANDARD_IDENTIFIERS,
    _bounded,
    _clean,
    normalize_email,
    normalize_phone,
)
from attentive_sync.domain.phones import fast_e164
from attentive_sync.domain.users import BulkUser
from attentive_sync.engine.mapping import Mapper, _decoded
from attentive_sync.sources.loyalty import check_readable

Wire = dict[str, Any]
# The types a coerced custom value has when it came from a database row; anything else
# (a subclass, a numpy scalar) goes through the typed models, which decide what it becomes.
_PLAIN = frozenset({str, int, float, bool})
# Identifier wire names in the order ``Identifiers.to_wire`` writes them.
_BOUNDED = ("clientUserId", "shopifyId", "klaviyoId")


class WireMapper:
    """Maps one customer row (plus audience memberships) to a bulk user's wire dict.

    Raises ``RecordRejected`` exactly where ``Mapper.map`` does, with the same code.
    """

    def __init__(self, config: ExportConfig) -> None:
        self.config = config
        self.typed = Mapper(config)
        self._fields = sorted(config.fields_read())
        self._ids = {target: field for field, target in config.identifier_mappings.items()}
        if set(self._ids) - set(STANDARD_IDENTIFIERS):
            raise ValueError(f"unknown identifier name(s) in {sorted(self._ids)}")
        self._known = [(t, f, *WELL_KNOWN[t]) for f, t in config.attribute_mappings.items()]
        self._region = config.default_region
        # Custom identifiers are validated by their model: those configs take the typed path.
        self._fast = not config.extra_identifiers

    def map(self, row: Mapping[str, Any], memberships: Mapping[str, bool]) -> Wire | BulkUser:
        """The user's wire dict; a typed ``BulkUser`` when an invalid email was left out
        (it says so in ``identifiers.dropped``, for the run report), which is rare."""
        if not self._fast:
            return self.typed.map(row, memberships).to_wire()
        check_readable(row, self._fields)
        identifiers = self._identifiers(row)
        if identifiers is None:
            return self.typed.map(row, memberships)
        attributes = self._attributes(row, memberships)
        if attributes is None:
            return self.typed.map(row, memberships).to_wire()
        wire: Wire = {"identifiers": identifiers}
        if attributes:
            wire["attributes"] = attributes
        return wire

    def _identifiers(self, row: Mapping[str, Any]) -> Wire | None:
        """The ``identifiers`` wire object; ``None`` when the email is invalid: whether it
        is left out or rejects the record is the typed path's rule, applied there."""
        ids = self._ids
        wire: Wire = {}
        phone = _clean(row.get(ids["phone"])) if "phone" in ids else None
        email = _clean(row.get(ids["email"])) if "email" in ids else None
        if phone and (e164 := self._phone(phone)):
            wire["phone"] = e164
        if email:
            try:
                wire["email"] = normalize_email(email)
            except RecordRejected:
                return None
        for name in _BOUNDED:
            if name in ids and (value := _bounded(name, _clean(row.get(ids[name])))):
                wire[name] = value
        if not wire:
            raise RecordRejected(
                NO_IDENTIFIER, "no usable identifier (phone, email, ids all empty)"
            )
        return wire

    def _phone(self, phone: str) -> str:
        return fast_e164(phone, self._region) or normalize_phone(phone, self._region)

    def _attributes(self, row: Mapping[str, Any], memberships: Mapping[str, bool]) -> Wire | None:
        """The ``attributes`` wire object; ``None`` when a value needs the typed path."""
        wire: Wire = {}
        for name, field, group, key, kind in self._known:
            value = row.get(field)
            if not _is_missing(value):
                target = wire if group is None else wire.setdefault(group, {})
                target[key] = _as_type(name, value, kind)
        merged: dict[str, Any] = {f: _decoded(row.get(f)) for f in self.config.custom_attributes}
        merged.update(memberships)
        custom: Wire = {}
        for name, value in merged.items():
            coerced = custom_value(name, value)
            if coerced is None:
                continue
            if type(coerced) not in _PLAIN:
                return None
            custom[name] = coerced
        if custom:
            wire["custom"] = custom
        return wire
