"""Opening the store and migrating it, on every back end."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import insert, text
from sqlalchemy.exc import OperationalError

from attentive_sync.store import (
    SchemaNotReadyError,
    Store,
    UnsupportedDatabaseError,
    init_db,
    make_engine,
    normalise_url,
)
from attentive_sync.store import db as store_db
from attentive_sync.store.db import _writer_lock, current_revision, head_revision, upgrade
from attentive_sync.store.tables import bulk_job_items, bulk_jobs, metadata
from tests.store.helpers import T0, delta


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def blank_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database: no tables, no Alembic version."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'blank.db'}"
    else:
        yield request.getfixturevalue("pg_url")


def test_sqlite_connections_get_wal_busy_timeout_and_foreign_keys(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    with engine.connect() as conn:
        pragmas = [
            conn.exec_driver_sql(f"PRAGMA {name}").scalar()
            for name in ("journal_mode", "busy_timeout", "foreign_keys")
        ]
    engine.dispose()
    assert pragmas == ["wal", 30_000, 1]


def _free(lock: threading.Lock) -> bool:
    if lock.acquire(blocking=False):
        lock.release()
        return True
    return False


def test_sqlite_writers_of_one_process_queue_on_a_lock_freed_however_they_end(
    sqlite_url: str,
) -> None:
    engine = make_engine(sqlite_url)
    other = make_engine(sqlite_url)  # a second engine on the same file shares the lock
    lock = _writer_lock(engine.url.database or "")
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE counter (n INTEGER)")
            conn.exec_driver_sql("INSERT INTO counter VALUES (0)")
            assert not _free(lock), "held for the transaction"
        assert _free(lock), "freed by a commit"
        with pytest.raises(RuntimeError), engine.begin():
            raise RuntimeError("the transaction fails")
        assert _free(lock), "freed by a rollback"
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
        assert _free(lock), "freed when a connection that only read is returned"
        with pytest.raises(Exception, match="no such table"), engine.begin() as conn:
            conn.exec_driver_sql("INSERT INTO missing VALUES (1)")
        assert _free(lock), "freed after a failed statement"

        def add(target: Any) -> None:
            for _ in range(40):
                with target.begin() as conn:
                    n = conn.exec_driver_sql("SELECT n FROM counter").scalar()
                    conn.exec_driver_sql(f"UPDATE counter SET n = {n + 1}")

        threads = [threading.Thread(target=add, args=(e,)) for e in (engine, other) * 3]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT n FROM counter").scalar() == 240, "none lost"
        assert _free(lock)
    finally:
        engine.dispose()
        other.dispose()


def test_a_writer_that_waited_out_the_lock_gets_sqlites_answer_without_a_second_wait(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_db, "SQLITE_BUSY_TIMEOUT_MS", 1_000)
    engine = make_engine(sqlite_url)
    other = make_engine(sqlite_url)
    lock = _writer_lock(engine.url.database or "")
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE t (n INTEGER)")
        holder = engine.connect()
        holder.begin()
        holder.exec_driver_sql("INSERT INTO t VALUES (1)")
        # The same thread opening a second write transaction (or any writer kept waiting
        # that long) gets "database is locked" after one busy timeout, not two.
        started = time.monotonic()
        with pytest.raises(OperationalError, match="database is locked"), other.begin():
            pass
        waited = time.monotonic() - started
        assert 1.0 <= waited < 1.9  # two waits would be 2.0 s
        holder.invalidate()  # dropped mid-transaction: never commits or rolls back through us
        assert _free(lock), "freed when the connection holding it is invalidated"
        with other.begin() as conn:
            # The same pooled connection that was refused: its busy timeout is back.
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 1_000
            conn.exec_driver_sql("INSERT INTO t VALUES (2)")
            assert conn.exec_driver_sql("SELECT n FROM t").scalars().all() == [2]
        assert _free(lock)
    finally:
        engine.dispose()
        other.dispose()


@pytest.mark.parametrize(
    ("url", "driver"),
    [
        ("postgresql://u@db:5432/sync", "postgresql+psycopg"),
        ("postgres://u@db/sync", "postgresql+psycopg"),
        ("postgresql+psycopg://u@db/sync", "postgresql+psycopg"),
        ("sqlite:///state.db", "sqlite"),
    ],
)
def test_urls_are_normalised_to_the_psycopg_driver(url: str, driver: str) -> None:
    assert normalise_url(url).drivername == driver


@pytest.mark.parametrize(
    ("url", "message"),
    [("mysql://u:secret@db/x", "not mysql"), ("not a url at all", "could not be parsed")],
)
def test_other_urls_are_refused_without_echoing_them(url: str, message: str) -> None:
    with pytest.raises(UnsupportedDatabaseError, match=message) as caught:
        normalise_url(url)
    assert "secret" not in str(caught.value)


def test_init_creates_the_schema_and_a_second_init_changes_nothing(blank_url: str) -> None:
    assert init_db(blank_url) == head_revision()
    with Store.from_url(blank_url) as store:
        store.deltas.enqueue([delta(1)], now=T0)
    assert init_db(blank_url) == head_revision()
    with Store.from_url(blank_url) as store:
        store.check_schema()
        assert store.deltas.counts()["pending"] == 1


def test_an_older_schema_is_upgraded_in_place_keeping_its_rows(blank_url: str) -> None:
    if head_revision() == "0001":
        pytest.skip("no revision after 0001 exists yet to upgrade to")
    with Store.from_url(blank_url) as store:
        upgrade(store.engine, "0001")
        store.deltas.enqueue([delta(1), delta(2)], now=T0)
        with pytest.raises(SchemaNotReadyError, match="run `attentive-sync db init` to upgrade"):
            store.check_schema()

        assert store.init() == head_revision()
        store.check_schema()
        assert store.deltas.counts()["pending"] == 2


def test_jobs_unsettled_at_the_upgrade_to_0007_hold_their_customers(blank_url: str) -> None:
    """From 0007 a lease reads a queue's own unsettled jobs only through their rows in
    flight: a job recorded before, whose row no longer holds its customer (its run lost the
    lease), must still hold them back until it settles."""
    with Store.from_url(blank_url) as store:
        upgrade(store.engine, "0006")
        jobs = [
            ("job-old", "audience_incremental", False, 1),
            ("job-done", "audience_incremental", True, 2),
            ("job-backfill", "audience_backfill", False, 3),
        ]
        with store.engine.begin() as conn:
            for job_id, kind, settled, customer in jobs:
                conn.execute(
                    insert(bulk_jobs).values(
                        job_id=job_id,
                        kind=kind,
                        status="SUBMITTED",
                        submitted_at=T0,
                        record_count=1,
                        settled=settled,
                    )
                )
                source = "backfill" if kind == "audience_backfill" else "delta"
                ref = f"initial|vip|{customer}" if source == "backfill" else "999"
                conn.execute(
                    insert(bulk_job_items).values(
                        job_id=job_id,
                        idx=0,
                        customer_id=customer,
                        source_kind=source,
                        source_ref=ref,
                        attributes={"vip": True},
                    )
                )
        upgrade(store.engine)

        assert store.holds.held([1, 2, 3]) == {1}
        store.deltas.enqueue([delta(1), delta(2), delta(3)])
        assert [row.customer_id for row in store.deltas.lease(10, 60, "w")] == [2]
        store.jobs.mark_settled("job-old", 1, 0)
        store.jobs.mark_settled("job-backfill", 1, 0)
        assert [row.customer_id for row in store.deltas.lease(10, 60, "w")] == [1, 3]


def test_holds_taken_before_0008_keep_holding_and_a_downgrade_drops_only_ranges(
    blank_url: str,
) -> None:
    later = datetime(2100, 1, 1, tzinfo=timezone.utc)
    with Store.from_url(blank_url) as store:
        upgrade(store.engine, "0007")
        store.holds.hold([5], "uncertain:x", "uncertain", later)
        upgrade(store.engine)

        assert store.holds.held([4, 5, 6]) == {5}
        store.holds.hold_range(10, 20, "backfill:a", "backfill", later)
        assert store.holds.held([5, 15, 25]) == {5, 15}

        with store.engine.begin() as connection:
            command.downgrade(store_db.alembic_config(connection), "0007")
            holders = connection.scalars(text("SELECT holder FROM customer_holds")).all()
        assert holders == ["uncertain:x"], "a range would have shrunk to its first customer"


def test_an_uninitialised_store_says_how_to_fix_it(blank_url: str) -> None:
    with Store.from_url(blank_url) as store, pytest.raises(SchemaNotReadyError, match="db init"):
        store.check_schema()


def test_workers_starting_together_both_find_the_schema_ready(blank_url: str) -> None:
    errors: list[BaseException] = []

    def start() -> None:
        try:
            init_db(blank_url)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    engine = make_engine(blank_url)
    assert current_revision(engine) == head_revision()
    engine.dispose()


def _engine_state_only(obj: Any, name: str | None, type_: str, *_: Any) -> bool:
    """Compare only the engine state tables; the reference schema has its own revision."""
    table = obj if type_ == "table" else getattr(obj, "table", None)
    return table is None or table.name in metadata.tables


def test_the_migration_builds_exactly_the_tables_the_code_queries(store_url: str) -> None:
    engine = make_engine(store_url)
    with engine.connect() as conn:
        opts = {"compare_type": True, "include_object": _engine_state_only}
        diffs = compare_metadata(MigrationContext.configure(conn, opts=opts), metadata)
        indexes = {
            row[0]
            for row in conn.execute(
                text(
                    "SELECT name FROM sqlite_master WHERE type = 'index'"
                    if conn.dialect.name == "sqlite"
                    else "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()"
                )
            )
        }
    engine.dispose()
    assert diffs == []
    assert {"ix_audience_deltas_open", "ix_loyalty_events_customer"} <= indexes
