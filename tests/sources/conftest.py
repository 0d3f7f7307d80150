"""Databases for the loyalty source tests: a SQLite file always, PostgreSQL when
``ATTENTIVE_SYNC_TEST_PG_URL`` names a server (each run in its own throwaway schema, so it
never touches tables other tests or people are using)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime, timezone

import pytest
from sqlalchemy import Engine

from attentive_sync.sources.seed import SeedReport, seed_program
from attentive_sync.store.db import init_db, make_engine
from tests.fixtures.stores import fresh_pg_schema

PG_ENV = "ATTENTIVE_SYNC_TEST_PG_URL"
NOW = datetime(2025, 6, 1, tzinfo=timezone.utc)
CUSTOMERS = 12_000  # two seed chunks, so chunk boundaries are exercised
SEED = 3


@pytest.fixture(
    scope="module",
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
)
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """An empty database at the current schema revision."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('loyalty') / 'loyalty.db'}"
        init_db(url)
        yield url
        return
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"{PG_ENV} is not set: no PostgreSQL server to test against")
    with fresh_pg_schema(base) as url:
        init_db(url)
        yield url


@pytest.fixture(scope="module")
def seeded(database_url: str) -> Iterator[tuple[Engine, SeedReport]]:
    """A seeded program and the seed's report, shared by a module's read-only tests."""
    engine = make_engine(database_url)
    report = seed_program(engine, CUSTOMERS, SEED, now=NOW)
    yield engine, report
    engine.dispose()


@pytest.fixture(scope="module")
def engine(seeded: tuple[Engine, SeedReport]) -> Engine:
    return seeded[0]
