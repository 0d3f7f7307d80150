"""The hand-written migration matches the declared schema, and times are stored one way."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from alembic import command
from sqlalchemy import insert, inspect, select, text
from sqlalchemy.exc import StatementError

from attentive_sync.sources._ledger import to_text
from attentive_sync.sources.schema import REFERENCE_TABLES, audiences, metadata
from attentive_sync.store.db import alembic_config, make_engine

NAMES = [t.name for t in REFERENCE_TABLES]


def _shape(inspector, name: str) -> dict:
    return {
        "columns": {c["name"]: c["nullable"] for c in inspector.get_columns(name)},
        "pk": inspector.get_pk_constraint(name)["constrained_columns"],
        "fks": sorted(
            (fk["constrained_columns"][0], fk["referred_table"])
            for fk in inspector.get_foreign_keys(name)
        ),
        "indexes": sorted(
            (ix["name"], tuple(ix["column_names"])) for ix in inspector.get_indexes(name)
        ),
        "unique": sorted(tuple(u["column_names"]) for u in inspector.get_unique_constraints(name)),
    }


def test_migration_0002_creates_exactly_the_declared_tables(database_url: str, tmp_path) -> None:
    migrated = make_engine(database_url)
    declared_url = f"sqlite:///{tmp_path / 'declared.db'}"
    declared = make_engine(declared_url)
    metadata.create_all(declared)
    try:
        if migrated.dialect.name == "sqlite":
            for name in NAMES:
                assert _shape(inspect(migrated), name) == _shape(inspect(declared), name), name
        else:
            for table in REFERENCE_TABLES:
                columns = {
                    c["name"]: c["nullable"] for c in inspect(migrated).get_columns(table.name)
                }
                assert columns == {c.name: c.nullable for c in table.columns}, table.name
    finally:
        migrated.dispose()
        declared.dispose()


def test_sqlite_keys_alias_the_rowid(database_url: str) -> None:
    engine = make_engine(database_url)
    if engine.dialect.name != "sqlite":
        engine.dispose()
        pytest.skip("the rowid alias is a SQLite storage detail")
    with engine.connect() as conn:
        sql = conn.scalar(text("SELECT sql FROM sqlite_master WHERE name = 'points_ledger'"))
        autoindexes = conn.scalar(
            text(
                "SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_autoindex_points_ledger_1'"
            )
        )
    engine.dispose()
    assert "entry_id INTEGER NOT NULL" in sql and autoindexes == 0


def test_downgrading_to_0001_removes_only_the_reference_tables(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'down.db'}"
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            command.upgrade(alembic_config(conn), "head")
            command.downgrade(alembic_config(conn), "0001")
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert not tables & set(NAMES)
    assert {"audience_deltas", "loyalty_events"} <= tables


def test_times_are_utc_aware_and_bulk_text_matches_the_sqlalchemy_storage_format(
    tmp_path,
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'times.db'}")
    metadata.create_all(engine)
    moment = datetime(2025, 3, 9, 1, 2, 3, 456789, tzinfo=timezone(timedelta(hours=-5)))
    try:
        with engine.begin() as conn:
            conn.execute(insert(audiences).values(slug="a", name="A", created_at=moment))
            raw = conn.scalar(text("SELECT created_at FROM audiences"))
            read = conn.scalar(select(audiences.c.created_at))
            with pytest.raises(StatementError, match="naive"):
                conn.execute(
                    insert(audiences).values(slug="b", name="B", created_at=datetime(2025, 1, 1))
                )
    finally:
        engine.dispose()
    micros = (moment - datetime(1970, 1, 1, tzinfo=timezone.utc)) // timedelta(microseconds=1)
    assert to_text(np.array([micros, -1], dtype=np.int64)) == [raw, None]
    assert read == moment and read.tzinfo == timezone.utc


def test_migration_0004_leaves_a_brands_views_alone(tmp_path) -> None:
    """A brand that replaced the reference tables with views keeps them through 0004."""
    url = f"sqlite:///{tmp_path / 'views.db'}"
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            command.upgrade(alembic_config(conn), "0003")
            conn.execute(text("DROP TABLE points_ledger"))
            conn.execute(text("DROP TABLE program_settings"))
            conn.execute(text("CREATE TABLE brand_points (id INTEGER, who INTEGER, n INTEGER)"))
            conn.execute(
                text(
                    "CREATE VIEW points_ledger AS SELECT id AS entry_id, who AS customer_id,"
                    " n AS points, 'earned' AS kind, 'approved' AS status,"
                    " NULL AS created_at, NULL AS approved_at, NULL AS reward_id,"
                    " NULL AS voucher_code, NULL AS rule_name FROM brand_points"
                )
            )
            conn.execute(text("CREATE VIEW program_settings AS SELECT 1 AS id"))
            conn.execute(text("CREATE VIEW referrals AS SELECT 1 AS referral_id"))
            command.upgrade(alembic_config(conn), "head")
        inspector = inspect(engine)
        assert {"points_ledger", "program_settings", "referrals"} <= set(inspector.get_view_names())
        assert "derived_state" in inspector.get_table_names()
    finally:
        engine.dispose()
