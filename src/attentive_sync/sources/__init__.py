"""The loyalty program's data: the reference schema, its readers, and a deterministic seed.

The readers are what flows import; ``seed`` is for demos and benchmarks and pulls in numpy,
so it is imported from its own module rather than from here.
"""

from attentive_sync.sources.errors import SeedError, SourceDataError, SourceError
from attentive_sync.sources.loyalty import (
    ProgramSettings,
    audience_slugs,
    iter_audience_member_pages,
    iter_customer_id_pages,
    load_customers,
    load_program_settings,
    load_rewards,
    load_tiers,
    points_approved_between,
    points_balances,
)
from attentive_sync.sources.schema import metadata

__all__ = [
    "ProgramSettings",
    "SeedError",
    "SourceDataError",
    "SourceError",
    "audience_slugs",
    "iter_audience_member_pages",
    "iter_customer_id_pages",
    "load_customers",
    "load_program_settings",
    "load_rewards",
    "load_tiers",
    "metadata",
    "points_approved_between",
    "points_balances",
]
