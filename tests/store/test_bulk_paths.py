"""The store's bulk paths give the answers of the plain ones, on every back end.

Rows inserted through one JSON document (SQLite) are stored as the driver would store
them row by row; close-together ids read as one range still answer for exactly the ids
asked; JSON columns read what they wrote, numbers and old NaN text included.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    func,
    select,
    text,
)

from attentive_sync.store import JobItem, Store, _sql, make_engine
from attentive_sync.store.db import json_text, json_value
from attentive_sync.store.tables import bulk_job_items
from attentive_sync.store.types import JsonValue, UtcDateTime
from tests.store.helpers import T0, at, delta

_meta = MetaData()
_plain = Table(
    "bulk_paths_plain",
    _meta,
    Column("n", BigInteger, primary_key=True, autoincrement=False),
    Column("label", String(50)),
    Column("doc", JsonValue),
    Column("stamp", UtcDateTime),
)
_floats = Table(
    "bulk_paths_floats", _meta, Column("n", Integer, primary_key=True), Column("x", Float)
)
_COLUMNS = ("n", "label", "doc", "stamp")

ROWS = [
    (1, "0123", {"vip": True, "tier": "gold"}, T0),
    (2, None, None, at(1)),
    (3, 'Zoë ✓ "quoted" \\ back', [1, 2.5, None], at(2)),
    (4, "120", 120, T0),
    (5, "", {"nested": {"list": ["a", "b"]}}, T0),
    (2**62, "past 2**53", {"big": 2**62}, T0),
]


def _stored(engine, table: Table) -> list[tuple]:
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            names = ", ".join(f"{c.name}, typeof({c.name})" for c in table.c)
            return list(conn.execute(text(f"SELECT {names} FROM {table.name} ORDER BY 1")))
        return list(conn.execute(select(table).order_by(table.c[table.c.keys()[0]])))


@pytest.fixture
def engine(store_url: str):
    engine = make_engine(store_url)
    _meta.create_all(engine)
    yield engine
    _meta.drop_all(engine)
    engine.dispose()


def test_rows_inserted_as_one_document_are_stored_as_row_by_row(engine, monkeypatch) -> None:
    with engine.begin() as conn:
        _sql.insert_rows(conn, _plain, ROWS, _COLUMNS)
    one_document = _stored(engine, _plain)
    with engine.begin() as conn:
        conn.execute(_plain.delete())
    monkeypatch.setattr(_sql, "_as_json_rows", lambda *args: None)
    with engine.begin() as conn:
        _sql.insert_rows(conn, _plain, ROWS, _COLUMNS)

    assert one_document == _stored(engine, _plain)
    with engine.connect() as conn:
        read = [tuple(row) for row in conn.execute(select(_plain).order_by(_plain.c.n))]
    assert read == ROWS


def test_an_upsert_as_one_document_keeps_the_newer_row(engine) -> None:
    upsert = (("n",), ("label", "stamp"))
    with engine.begin() as conn:
        _sql.insert_rows(conn, _plain, [(1, "new", None, at(5))], _COLUMNS)
        older, newer = (1, "older", None, at(1)), (2, "fresh", None, at(9))
        _sql.insert_rows(
            conn, _plain, [older, newer], _COLUMNS, upsert=upsert, unless_older="stamp"
        )
        _sql.insert_rows(
            conn,
            _plain,
            [(2, "later", None, at(10))],
            _COLUMNS,
            upsert=upsert,
            unless_older="stamp",
        )
    with engine.connect() as conn:
        rows = conn.execute(select(_plain.c.n, _plain.c.label).order_by(_plain.c.n)).all()
    assert [tuple(r) for r in rows] == [(1, "new"), (2, "later")]


def test_floats_are_bound_row_by_row(engine) -> None:
    value = 0.1 + 0.2  # a last digit a JSON round trip through SQLite might not keep
    assert _sql._as_json_rows(_floats, ("n", "x"), [(1, value)]) is None
    with engine.begin() as conn:
        _sql.insert_rows(conn, _floats, [(1, value)], ("n", "x"))
    with engine.connect() as conn:
        assert conn.scalar(select(_floats.c.x)) == value


def test_integers_json_may_not_carry_exactly_are_bound_row_by_row() -> None:
    # (Rows as the driver gets them: every column converted already.)
    row = (2**63, "x", None, "t")  # SQLite's JSON reader would take it as REAL
    assert _sql._as_json_rows(_plain, _COLUMNS, [row]) is None
    assert _sql._as_json_rows(_plain, _COLUMNS, [(2**53 - 1, "x", None, "t")]) is not None


def test_text_holding_a_nul_is_stored_whole(engine) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL text cannot hold a NUL character at all")
    with engine.begin() as conn:
        _sql.insert_rows(conn, _plain, [(1, "a\x00b", None, T0)], _COLUMNS)
    with engine.connect() as conn:
        assert conn.scalar(select(_plain.c.label)) == "a\x00b"


def test_json_columns_read_numbers_and_old_nan_text() -> None:
    assert json_value(json_text({"a": [1, "b"]})) == {"a": [1, "b"]}
    huge = 123456789012345678901234567890
    assert json_value(json_text({"x": huge}))["x"] == huge
    assert json_value('{"x": 123456789012345678901234567890}')["x"] == huge
    assert json_value('{"x": NaN}')["x"] != json_value('{"x": NaN}')["x"]
    with pytest.raises(TypeError):
        json_value(120)  # SQLAlchemy then takes the stored number as it is
    assert json_text({1: "int key"}) == '{"1":"int key"}'


# -- close-together ids read as one range ---------------------------------------------

_ids = st.lists(st.integers(1, 400), unique=True)


def _dense(ids: list[int]) -> bool:
    return _sql.span_of(ids) is not None


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(held=_ids, asked=st.one_of(_ids, st.lists(st.integers(1, 400), min_size=64, unique=True)))
def test_held_answers_for_exactly_the_ids_asked(store: Store, held, asked) -> None:
    store.holds.release("h")
    store.holds.hold(held, "h", "backfill", T0 + timedelta(days=1))

    assert store.holds.held(asked, now=T0) == set(held) & set(asked)
    assert store.holds.held(asked, now=T0, but="h") == set()


def test_dense_lookups_ignore_the_neighbours_in_their_range(store: Store) -> None:
    asked = [c for c in range(100, 300) if c % 7]  # dense, with gaps
    assert _dense(asked)
    neighbours = [c for c in range(90, 310) if c not in asked]
    store.holds.hold(neighbours + [100], "h", "uncertain", T0 + timedelta(days=1))
    store.deltas.enqueue([delta(c) for c in neighbours + [101]], now=T0)
    # Items kept as rows, with no hold of their job's own (the range hold of a job keeping
    # its members as one document would name the neighbours).
    items = [JobItem(c, "notice", f"n:{c}", {"due": 1}) for c in neighbours + [102]]
    store.jobs.record_job("job-1", "audience_backfill", items, "w", now=T0)

    assert store.holds.held(asked, now=T0) == {100}
    assert store.deltas.unfinished(asked, "audience") == {(101, "vip")}
    assert store.jobs.customers_in_flight(asked) == {102}


# PostgreSQL's JSONB cannot hold a NUL character, in a key or a value.
_text = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=8
)
_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=6,
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(attributes=st.lists(st.dictionaries(_text, _json, max_size=3), min_size=1))
def test_a_jobs_items_read_back_as_the_column_type_reads_them(store: Store, attributes) -> None:
    """Items are read back in one pass over their JSON texts: the values the column type
    reads row by row, in order, long integers and empty attributes included (and on SQLite
    the values recorded; PostgreSQL's JSONB writes a float with an integral value as an
    integer)."""
    job_id = f"job-{len(store.jobs.list_unsettled())}"
    items = [JobItem(100 + n, "notice", f"n:{100 + n}", a) for n, a in enumerate(attributes)]
    store.jobs.record_job(job_id, "reward_reminder", items)
    t = bulk_job_items.c
    with store.engine.connect() as conn:
        stmt = select(t.attributes).where(t.job_id == job_id).order_by(t.idx)
        plain = list(conn.scalars(stmt))
    read = store.jobs.items(job_id)
    assert [i.attributes for i in read] == plain
    assert [(i.customer_id, i.source_ref) for i in read] == [
        (i.customer_id, i.source_ref) for i in items
    ]
    if store.engine.dialect.name == "sqlite":
        assert read == items


# A job that keeps its items as one document: its kind, and the item of customer ``n``.
DOCUMENT_JOBS = {
    "queue rows": ("audience_incremental", lambda n: ("delta", str(1000 + n))),
    "backfill members": ("audience_backfill", lambda n: ("backfill", f"run|vip,gold|{100 + n}")),
}


@pytest.mark.parametrize("job", DOCUMENT_JOBS.values(), ids=DOCUMENT_JOBS.keys())
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(attributes=st.lists(st.dictionaries(_text, _json, max_size=3), min_size=1, max_size=40))
def test_a_documents_items_read_back_exactly(store: Store, job, attributes) -> None:
    """A backfill job keeps its members, and a job of queue rows its records, as one JSON
    document: they read back as recorded, in order, on both stores (long integers, floats
    and empty attributes included), and no items row is written."""
    kind, source = job
    job_id = f"job-{len(store.jobs.list_unsettled())}"
    shared = {"vip": True}
    items = [JobItem(100 + n, *source(n), a if n % 2 else shared) for n, a in enumerate(attributes)]
    store.jobs.record_job(job_id, kind, items)
    assert store.jobs.items(job_id) == items
    t = bulk_job_items.c
    with store.engine.connect() as conn:
        assert conn.scalar(select(func.count()).where(t.job_id == job_id)) == 0
