"""Customer rows -> Attentive bulk user records, through the export configuration."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from attentive_sync.domain.attributes import build_attributes
from attentive_sync.domain.errors import RecordRejected
from attentive_sync.domain.export_config import ExportConfig
from attentive_sync.domain.identifiers import Identifiers, build_identifiers
from attentive_sync.domain.users import BulkUser
from attentive_sync.sources.loyalty import check_readable

UNKNOWN_CUSTOMER = "unknown_customer"


def identifiers_for(config: ExportConfig, row: Mapping[str, Any]) -> Identifiers:
    """The customer's identifiers through the export configuration's mappings."""
    check_readable(row, [*config.identifier_mappings, *config.extra_identifiers])
    return build_identifiers(
        {target: row.get(field) for field, target in config.identifier_mappings.items()},
        region=config.default_region,
        custom={field: row.get(field) for field in config.extra_identifiers},
    )


def customer_row(rows: Mapping[int, Mapping[str, Any]], customer_id: int) -> Mapping[str, Any]:
    """The customer's source row, or the reason their record can never be sent."""
    row = rows.get(customer_id)
    if row is None:
        raise RecordRejected(UNKNOWN_CUSTOMER, "no customer row for this record")
    return row


def _decoded(value: Any) -> Any:
    """Array-valued columns stored as JSON text arrive as lists, so they become CSV text."""
    if isinstance(value, str) and value.startswith("["):
        try:
            parsed = json.loads(value)
        except ValueError:
            return value
        return parsed if isinstance(parsed, list) else value
    return value


class Mapper:
    """Maps one customer row (plus audience memberships) to a ``BulkUser``.

    Raises ``RecordRejected`` for a record that can never succeed; the caller quarantines it.
    """

    def __init__(self, config: ExportConfig) -> None:
        self.config = config

    def missing_fields(self, available: set[str]) -> list[str]:
        """Configured fields the source does not have: a configuration error, found up front."""
        return sorted(self.config.fields_read() - available)

    def map(self, row: Mapping[str, Any], memberships: Mapping[str, bool]) -> BulkUser:
        cfg = self.config
        check_readable(row, cfg.fields_read())
        identifiers = identifiers_for(cfg, row)
        custom: dict[str, Any] = {f: _decoded(row.get(f)) for f in cfg.custom_attributes}
        custom.update(memberships)
        attributes = build_attributes(
            {target: row.get(field) for field, target in cfg.attribute_mappings.items()}, custom
        )
        return BulkUser(
            customer_id=int(row["customer_id"]), identifiers=identifiers, attributes=attributes
        )
