"""Fixtures: a migrated SQLite store seeded with a small program, and the emulator.

Loaded as a plugin by tests/conftest.py, so every test directory can use them.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone

import pytest
from pydantic import SecretStr

from attentive_sync.domain.export_config import ExportConfig
from attentive_sync.emulator import EmulatorConfig, EmulatorServer
from attentive_sync.engine.runtime import Runtime, build_runtime
from attentive_sync.settings import DEMO_API_KEY, AttentiveSettings, SyncSettings
from attentive_sync.sources.seed import seed_program
from attentive_sync.store import init_db, make_engine

NOW = datetime(2026, 11, 1, tzinfo=timezone.utc)
CUSTOMERS = 400

CONFIG = ExportConfig(
    audiences=["vip", "churn_risk", "newsletter"],
    identifier_mappings={"phone": "phone", "email": "email", "client_user_id": "clientUserId"},
    attribute_mappings={"first_name": "firstName", "date_of_birth": "dateOfBirth"},
    custom_attributes=["tier", "favorite_categories"],
)


@pytest.fixture(scope="session")
def seeded_template(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("engine") / "program.db"
    url = f"sqlite:///{path}"
    init_db(url)
    engine = make_engine(url)
    seed_program(engine, CUSTOMERS, seed=11, now=NOW)
    engine.dispose()
    return str(path)


@pytest.fixture
def db_url(tmp_path, seeded_template) -> str:
    import shutil

    path = tmp_path / "program.db"
    shutil.copyfile(seeded_template, path)
    return f"sqlite:///{path}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def program_url(request: pytest.FixtureRequest) -> str:
    """The seeded program on SQLite, and on PostgreSQL (a fresh schema) when configured."""
    if request.param == "sqlite":
        return request.getfixturevalue("db_url")
    url: str = request.getfixturevalue("pg_url")
    init_db(url)
    engine = make_engine(url)
    seed_program(engine, CUSTOMERS, seed=11, now=NOW)
    engine.dispose()
    return url


@pytest.fixture
def emulator() -> Iterator[EmulatorServer]:
    with EmulatorServer(EmulatorConfig(job_delay=0.05)) as server:
        yield server


def make_runtime(db_url: str, base_url: str, **sync: object) -> Runtime:
    settings = SyncSettings(db_url=db_url, poll_interval_seconds=0.05, **sync)
    attentive = AttentiveSettings(
        api_key=SecretStr(DEMO_API_KEY), base_url=base_url, backoff_base=0.01, backoff_cap=0.2
    )
    return build_runtime(settings, attentive)


@pytest.fixture
def runtime(db_url: str, emulator: EmulatorServer) -> Iterator[Runtime]:
    rt = make_runtime(db_url, emulator.base_url)
    yield rt
    rt.close()


@pytest.fixture
def any_runtime(program_url: str, emulator: EmulatorServer) -> Iterator[Runtime]:
    """``runtime``, once per database back end."""
    rt = make_runtime(program_url, emulator.base_url)
    yield rt
    rt.close()
