"""A throwaway loyalty database with only the tables the notices read.

The tables are declared with SQLAlchemy Core, so timestamps are stored exactly as the real
schema stores them (``DateTime(timezone=True)``), which is what the queries' text comparisons
on SQLite rely on. On PostgreSQL each test gets a private schema, dropped afterwards, so it
never touches tables anyone else uses in the same database.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone

import pytest
import sqlalchemy as sa

metadata = sa.MetaData()
TS = sa.DateTime(timezone=True)

customers = sa.Table(
    "customers",
    metadata,
    sa.Column("customer_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("enrolled_at", TS, nullable=False),
    sa.Column("last_activity_at", TS),
)
points_ledger = sa.Table(
    "points_ledger",
    metadata,
    sa.Column("entry_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("customer_id", sa.BigInteger, nullable=False, index=True),
    sa.Column("points", sa.Integer, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("approved_at", TS),
)
rewards = sa.Table(
    "rewards",
    metadata,
    sa.Column("reward_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("title", sa.Text),
    sa.Column("kind", sa.Text),
    sa.Column("cost_points", sa.Integer),
    sa.Column("enabled", sa.Boolean),
    sa.Column("in_stock", sa.Boolean),
    sa.Column("actionable", sa.Boolean),
)
program_settings = sa.Table(
    "program_settings",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("points_expiry_enabled", sa.Boolean),
    sa.Column("expiry_period_days", sa.Integer),
    sa.Column("expiry_notice_days", sa.Integer),
    sa.Column("reward_reminder_enabled_at", TS),
)
loyalty_events = sa.Table(
    "loyalty_events",
    metadata,
    sa.Column("event_id", sa.Text, primary_key=True),
    sa.Column("topic", sa.Text, nullable=False),
    sa.Column("customer_id", sa.BigInteger, nullable=False),
    sa.Column("occurred_at", TS, nullable=False),
    sa.Column("payload", sa.JSON),
    sa.Column("state", sa.Text, nullable=False),
)
notices_sent = sa.Table(
    "notices_sent",
    metadata,
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("customer_id", sa.BigInteger, nullable=False),
    sa.Column("period_key", sa.Text, nullable=False),
    sa.Column("sent_at", TS, nullable=False),
    sa.Column("event_id", sa.Text),
    sa.UniqueConstraint("kind", "customer_id", "period_key"),
)

PG_URL_ENV = "ATTENTIVE_SYNC_TEST_PG_URL"


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=timezone.utc)


def sqlite_engine(tmp_path) -> Iterator[sa.Engine]:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'loyalty.db'}")
    metadata.create_all(engine)
    yield engine
    engine.dispose()


def postgres_engine() -> Iterator[sa.Engine]:
    url = os.environ.get(PG_URL_ENV)
    if not url:
        pytest.skip(f"{PG_URL_ENV} is not set, so the PostgreSQL variant cannot run")
    schema = f"notices_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    engine = sa.create_engine(url, connect_args={"options": f"-csearch_path={schema}"})
    metadata.create_all(engine)
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
