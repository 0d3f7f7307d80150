"""One value the source cannot read as its column's type costs that value, never the read.

SQLite stores dates as text, so any text can sit in a date column; on PostgreSQL a brand's
``customers`` view may expose a date or timestamp as a text column. Either way the rest of
the row, and every other row, reads as usual.
"""

from __future__ import annotations

import os
from datetime import date, datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import text

from attentive_sync.domain.errors import BAD_SOURCE_VALUE, RecordRejected
from attentive_sync.sources import UnreadableValue, check_readable, load_customers
from attentive_sync.store.db import init_db, make_engine
from tests.fixtures.stores import PG_URL_ENV, fresh_pg_schema

GOOD, BAD_DATE, BAD_TIMES, NON_TEXT = 1, 2, 3, 4
ENROLLED = datetime(2024, 3, 1, 12, 30, tzinfo=timezone.utc)

INSERT = text(
    "INSERT INTO customers (customer_id, email, first_name, date_of_birth, enrolled_at, "
    "last_activity_at, tier) VALUES (:id, :email, :name, :dob, :enrolled, :active, 'Gold')"
)


def rows_with_bad_values(enrolled: str, dob_as_number: object) -> list[dict]:
    return [
        {"id": GOOD, "dob": "1990-01-02", "enrolled": enrolled, "active": None},
        {"id": BAD_DATE, "dob": "1990-13-45", "enrolled": enrolled, "active": enrolled},
        {"id": BAD_TIMES, "dob": None, "enrolled": "garbage", "active": "2024-02-30 10:00:00"},
        {"id": NON_TEXT, "dob": dob_as_number, "enrolled": enrolled, "active": None},
    ]


def assert_read_value_by_value(rows: list[dict]) -> None:
    by_id = {row["customer_id"]: row for row in rows}
    assert sorted(by_id) == [GOOD, BAD_DATE, BAD_TIMES, NON_TEXT]
    good = by_id[GOOD]
    assert good["date_of_birth"] == date(1990, 1, 2)
    assert good["enrolled_at"] == ENROLLED and good["enrolled_at"].tzinfo is not None
    assert good["last_activity_at"] is None
    assert by_id[BAD_DATE]["date_of_birth"] == UnreadableValue("date_of_birth", "not a valid date")
    assert by_id[BAD_DATE]["enrolled_at"] == ENROLLED  # the rest of the row reads as usual
    assert by_id[BAD_TIMES]["date_of_birth"] is None
    assert by_id[BAD_TIMES]["enrolled_at"] == UnreadableValue(
        "enrolled_at", "not a valid timestamp"
    )
    assert by_id[BAD_TIMES]["last_activity_at"] == UnreadableValue(
        "last_activity_at", "not a valid timestamp"
    )
    assert by_id[NON_TEXT]["date_of_birth"] == UnreadableValue("date_of_birth", "not a valid date")
    for row in rows:
        assert row["email"] == f"c{row['customer_id']}@example.com"
        assert row["first_name"] == "Ada" and row["tier"] == "Gold"


def test_sqlite_bad_dates_and_timestamps_become_unreadable_values(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'program.db'}"
    init_db(url)
    engine = make_engine(url)
    stored = "2024-03-01 12:30:00.000000"  # how UtcDateTime stores a time in SQLite
    with engine.begin() as conn:
        for row in rows_with_bad_values(stored, 19900102):
            conn.execute(INSERT, {"email": f"c{row['id']}@example.com", "name": "Ada", **row})
    try:
        assert_read_value_by_value(load_customers(engine, [NON_TEXT, GOOD, BAD_TIMES, BAD_DATE]))
        # Rows that only read well still come back as they always did.
        assert [r["customer_id"] for r in load_customers(engine, [GOOD, 99])] == [GOOD]
    finally:
        engine.dispose()


@pytest.fixture
def pg_text_view():
    """A PostgreSQL schema whose ``customers`` is a view over a table of text columns."""
    base = os.environ.get(PG_URL_ENV)
    if not base:
        pytest.skip(f"{PG_URL_ENV} is not set: the PostgreSQL text-view test needs a server")
    with fresh_pg_schema(base) as url:
        engine = make_engine(url)
        columns = (
            "customer_id, phone, email, client_user_id, shopify_id, klaviyo_id, first_name, "
            "last_name, city, state, zip, country, date_of_birth, enrolled_at, "
            "last_activity_at, tier, insights_segment, favorite_categories"
        )
        with engine.begin() as conn:
            text_columns = ", ".join(f"{c} text" for c in columns.split(", ")[1:])
            conn.execute(text(f"CREATE TABLE crm_export (customer_id bigint, {text_columns})"))
            conn.execute(text(f"CREATE VIEW customers AS SELECT {columns} FROM crm_export"))
        try:
            yield engine
        finally:
            engine.dispose()


@pytest.mark.postgres
def test_postgres_text_view_bad_values_become_unreadable_values(pg_text_view):
    stored = "2024-03-01 14:30:00+02"  # a text column holds whatever the export wrote
    insert = text(str(INSERT).replace("INTO customers", "INTO crm_export"))
    with pg_text_view.begin() as conn:
        for row in rows_with_bad_values(stored, "19900102x"):
            conn.execute(insert, {"email": f"c{row['id']}@example.com", "name": "Ada", **row})
    assert_read_value_by_value(load_customers(pg_text_view, [GOOD, BAD_DATE, BAD_TIMES, NON_TEXT]))


ROW = {
    "customer_id": 7,
    "email": "ada@example.com",
    "date_of_birth": UnreadableValue("date_of_birth", "not a valid date"),
    "enrolled_at": UnreadableValue("enrolled_at", "not a valid timestamp"),
}


def test_check_readable_refuses_a_row_only_for_the_fields_it_is_asked_about():
    check_readable(ROW, ["email", "first_name"])  # the bad columns are not read: no error
    with pytest.raises(RecordRejected) as info:
        check_readable(ROW, ["email", "date_of_birth"])
    assert info.value.code == BAD_SOURCE_VALUE == "bad_source_value"
    assert info.value.detail == "column date_of_birth: not a valid date"


def test_check_readable_names_every_unreadable_column_in_a_stable_order():
    with pytest.raises(RecordRejected) as info:
        check_readable(ROW, {"enrolled_at", "email", "date_of_birth"})
    assert info.value.detail == (
        "column date_of_birth: not a valid date; column enrolled_at: not a valid timestamp"
    )
