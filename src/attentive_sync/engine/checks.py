"""Checks of the export configuration against the loyalty source, made once per run.

A misspelt field would otherwise read as empty on every customer and quarantine them all
as ``no_identifier``; a misspelt audience would silently export nobody.
"""

from __future__ import annotations

from sqlalchemy import inspect

from attentive_sync.domain.export_config import ExportConfig
from attentive_sync.engine.mapping import Mapper
from attentive_sync.engine.runtime import Runtime
from attentive_sync.sources.loyalty import audience_slugs
from attentive_sync.sources.schema import customers


class ConfigurationError(ValueError):
    """The export configuration does not fit the source data."""


def check_against_source(runtime: Runtime, config: ExportConfig) -> None:
    columns = {c["name"] for c in inspect(runtime.source).get_columns(customers.name)}
    missing = Mapper(config).missing_fields(columns)
    if missing:
        raise ConfigurationError(
            f"the export configuration reads fields the customers source lacks: {missing}"
        )
    unknown = sorted(set(config.audiences) - set(audience_slugs(runtime.source)))
    if unknown:
        raise ConfigurationError(f"the source defines no audience {unknown}")
