"""The store fixtures live in tests/fixtures/stores.py so other test directories reuse them."""

from tests.fixtures.stores import (  # noqa: F401
    _sqlite_template,
    pg_url,
    sqlite_url,
    store,
    store_url,
)
