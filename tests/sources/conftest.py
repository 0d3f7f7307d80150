"""Databases for the loyalty source tests: a SQLite file always, PostgreSQL when
``ATTENTIVE_SYNC_TEST_PG_URL`` names a server (each run in its own throwaway schema, so it
never touches tables other tests or people are using)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from attentive_sync.sources.seed import SeedReport, seed_program
from attentive_sync.store.db import init_db, make_engine

PG_ENV = "ATTENTIVE_SYNC_TEST_PG_URL"
NOW = datetime(2025, 6, 1, tzinfo=timezone.utc)
CUSTOMERS = 12_000  # two seed chunks, so chunk boundaries are exercised
SEED = 3


@contextmanager
def _pg_schema_url(base: str) -> Iterator[str]:
    schema = f"sources_{uuid.uuid4().hex[:12]}"
    admin = make_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


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
    with _pg_schema_url(base) as url:
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
