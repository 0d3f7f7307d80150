"""The README's worked PostgreSQL example: the reference schema as views over a brand's own
tables (examples/postgres/*.sql), read through a role that may read the views only, feeds
the backfill and the reminder computation."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml
from sqlalchemy.pool import NullPool
from support.program import make_runtime

from attentive_sync.domain.export_config import ExportConfig
from attentive_sync.engine.audience.export import run_backfill
from attentive_sync.engine.delivery.collaborators import direct_waiter, thread_pool_sender
from attentive_sync.engine.notices import plan_reward_reminders
from attentive_sync.store import init_db, make_engine, normalise_url
from tests.fixtures.stores import PG_SKIP_REASON, PG_URL_ENV

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "postgres"
CONFIG = ExportConfig.model_validate(
    yaml.safe_load((ROOT / "deployments" / "prefect.yaml").read_text())["definitions"][
        "export_config"
    ]
)


@pytest.fixture
def reader_url() -> Iterator[str]:
    """Runs the example's SQL under unique names; yields the read-only role's URL."""
    base = os.environ.get(PG_URL_ENV)
    if not base:
        pytest.skip(PG_SKIP_REASON)
    suffix = uuid.uuid4().hex[:10]
    names = {
        "brand_shop": f"brand_shop_{suffix}",
        "attentive_source": f"attentive_source_{suffix}",
        "attentive_reader": f"attentive_reader_{suffix}",
    }
    sql = "\n".join((EXAMPLE / name).read_text() for name in ("brand_tables.sql", "views.sql"))
    for name, unique in names.items():
        sql = sql.replace(name, unique)
    admin = make_engine(base, poolclass=NullPool)
    with admin.begin() as conn:
        conn.exec_driver_sql(sql)
    url = normalise_url(base).set(username=names["attentive_reader"], password="change-me")
    url = url.update_query_dict({"options": f"-csearch_path={names['attentive_source']}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            for schema in ("attentive_source", "brand_shop"):
                conn.exec_driver_sql(f'DROP SCHEMA "{names[schema]}" CASCADE')
            conn.exec_driver_sql(f'DROP ROLE "{names["attentive_reader"]}"')
        admin.dispose()


def test_views_over_a_brand_schema_feed_the_backfill_and_the_reminder(
    reader_url, emulator, tmp_path
):
    state = f"sqlite:///{tmp_path / 'state.db'}"
    init_db(state)
    runtime = make_runtime(state, emulator.base_url, source_url=reader_url)
    try:
        report = run_backfill(
            runtime,
            CONFIG,
            "views",
            thread_pool_sender(runtime, "t", 1),
            direct_waiter(runtime, 10.0, "t"),
        )
        as_of = datetime(2026, 11, 15, tzinfo=timezone.utc)
        with runtime.source.connect() as conn, runtime.store.engine.connect() as engine_state:
            reminders = plan_reward_reminders(conn, as_of, engine_state)
    finally:
        runtime.close()

    assert report.problems() == [] and report.counts["accepted"] == 2
    ada = emulator.state.find_user(clientUserId="101")
    assert ada["identifiers"] == {
        "phone": "+14155552671",
        "email": "ada@example.com",
        "clientUserId": "101",
        "shopifyId": "9001",
    }
    assert ada["attributes"]["custom"] == {
        "tier": "Gold",
        "insights_segment": "Loyal",
        "favorite_categories": "shoes,hats",
        "vip": True,
    }
    grace = emulator.state.find_user(clientUserId="102")
    assert grace["attributes"]["location"] == {"city": "London", "country": "GB"}
    assert grace["attributes"]["custom"]["newsletter"] is True
    # 700 earned and 100 spent in October: 600 points, and the $5 reward is available.
    (due,) = reminders.notices.itertuples()
    assert (due.customer_id, due.points_balance, due.points_approved_in_interval) == (101, 600, 700)
