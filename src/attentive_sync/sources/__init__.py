"""The loyalty program's data: the reference schema, its readers, and a deterministic seed.

The readers are what flows import; ``seed`` is for demos and benchmarks and pulls in numpy,
so it is imported from its own module rather than from here.
"""

from attentive_sync.sources.errors import SeedError, SourceError, UnreadableValue
from attentive_sync.sources.loyalty import (
    audience_slugs,
    check_readable,
    is_member,
    iter_audience_member_pages,
    load_customers,
    points_balances,
)
from attentive_sync.sources.schema import metadata

__all__ = [
    "SeedError",
    "SourceError",
    "UnreadableValue",
    "audience_slugs",
    "check_readable",
    "is_member",
    "iter_audience_member_pages",
    "load_customers",
    "metadata",
    "points_balances",
]
