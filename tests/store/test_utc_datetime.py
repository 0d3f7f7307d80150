"""``UtcDateTime`` on SQLite reads and writes its text in one step; the result is exactly
what SQLAlchemy's text conversion followed by the zone gives (the two-step chain it
replaces), for every aware datetime, whatever its zone, and for text it did not write."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Column, Integer, MetaData, Table, insert, select, text
from sqlalchemy.types import TypeDecorator

from attentive_sync.store import make_engine
from attentive_sync.store.errors import InvalidRecordError
from attentive_sync.store.types import UtcDateTime

ENGINE = make_engine("sqlite://")
DIALECT = ENGINE.dialect
# As SQLAlchemy uses it: the type adapted to the dialect (its DateTime is SQLite's).
FAST = UtcDateTime().dialect_impl(DIALECT)
BIND, READ = FAST.bind_processor(DIALECT), FAST.result_processor(DIALECT, None)
# The chain the one step replaces: TypeDecorator's own composition of the hooks and the
# wrapped DateTime's SQLite processors.
TWO_STEP_BIND = TypeDecorator.bind_processor(FAST, DIALECT)
TWO_STEP_READ = TypeDecorator.result_processor(FAST, DIALECT, None)

zones = st.one_of(
    st.just(timezone.utc),
    st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m))),
)
aware = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=zones)


@given(aware)
def test_writing_gives_the_text_the_two_steps_give(value: datetime) -> None:
    assert BIND is not None and TWO_STEP_BIND is not None
    assert BIND(value) == TWO_STEP_BIND(value)


@given(aware)
def test_reading_the_stored_text_gives_what_the_two_steps_give(value: datetime) -> None:
    assert BIND is not None and READ is not None and TWO_STEP_READ is not None
    stored = BIND(value)
    read = READ(stored)
    assert read == TWO_STEP_READ(stored) == value
    assert read.tzinfo is timezone.utc and read.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "stored",
    ["2026-12-03 18:53:30", "2026-12-03", "2026-12-03 18:53:30.5", "2026-12-03T18:53:30.123456"],
)
def test_text_the_store_did_not_write_is_read_the_two_step_way(stored: str) -> None:
    assert READ is not None and TWO_STEP_READ is not None
    assert READ(stored) == TWO_STEP_READ(stored)
    assert READ(None) is None


def test_a_naive_datetime_is_still_refused() -> None:
    assert BIND is not None
    with pytest.raises(InvalidRecordError, match="naive"):
        BIND(datetime(2026, 12, 3, 18, 53))


def test_a_round_trip_through_sqlite_keeps_the_instant_and_text_order() -> None:
    meta = MetaData()
    table = Table("stamps", meta, Column("n", Integer, primary_key=True), Column("at", UtcDateTime))
    meta.create_all(ENGINE)
    plus_two = timezone(timedelta(hours=2))
    values = [
        datetime(2026, 12, 3, 20, 0, tzinfo=plus_two),  # 18:00 UTC
        datetime(2026, 12, 3, 18, 0, 0, 1, tzinfo=timezone.utc),
        datetime(2026, 12, 3, 17, 59, 59, 999999, tzinfo=timezone.utc),
    ]
    with ENGINE.begin() as conn:
        conn.execute(insert(table), [{"n": n, "at": v} for n, v in enumerate(values)])
        read = list(conn.execute(select(table.c.at).order_by(table.c.n)).scalars())
        ordered = list(conn.execute(text("SELECT n FROM stamps ORDER BY at")).scalars())
    assert read == values and all(v.tzinfo is timezone.utc for v in read)
    assert ordered == [2, 0, 1]
