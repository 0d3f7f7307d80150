"""The ``engine`` fixture: every query test runs on SQLite, and on PostgreSQL when configured."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from .loyalty_db import postgres_engine, sqlite_engine


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def engine(request, tmp_path) -> Iterator[sa.Engine]:
    if request.param == "sqlite":
        yield from sqlite_engine(tmp_path)
    else:
        yield from postgres_engine()
