"""Loading the reference tables from CSV and Parquet files: the good rows load, each bad
row is reported by line and column, a second load changes rows instead of adding them."""

from __future__ import annotations

import re
from datetime import date, datetime, timezone
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import Column, Integer, MetaData, Table, Text, select

from attentive_sync.sources import schema
from attentive_sync.sources.load import LoadError, LoadPlan, load_file, plan_load
from attentive_sync.store.db import make_engine

CUSTOMERS = (
    "customer_id,email,state,date_of_birth,enrolled_at\n"
    "1,Ada@Example.com,CA,1990-12-10,2026-01-05T10:00:00Z\n"
    "2,  ,  ,,2026-02-01\n"
    "x3,bad@example.com,,,2026-02-01\n"
    "4,,,1990-13-45,2026-02-01\n"
    "5,,,,\n"
    "6,,,,next week\n"
)


@pytest.fixture
def engine(store_url):
    engine = make_engine(store_url)
    yield engine
    engine.dispose()


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def rows(engine, table: Table) -> list[dict]:
    key = list(table.primary_key.columns)
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(table).order_by(*key)).mappings()]


def test_good_rows_load_and_each_bad_row_is_named_by_line_and_column(engine, tmp_path):
    (plan,) = plan_load([write(tmp_path, "customers.csv", CUSTOMERS)])
    result = load_file(engine, plan)

    assert (result.rows, result.loaded) == (6, 2)
    assert [(e.line, e.message) for e in result.errors] == [
        (4, "customer_id is not a whole number"),
        (5, "date_of_birth is not a date (YYYY-MM-DD)"),
        (6, "enrolled_at is empty; customers requires it"),
        (
            7,
            "enrolled_at is not a date-time (ISO 8601, e.g. 2026-01-31T09:00:00Z; "
            "no zone means UTC)",
        ),
    ]
    assert all("bad@example" not in e.message for e in result.errors)  # never the value
    first, second = rows(engine, schema.customers)
    assert (first["email"], first["state"], first["date_of_birth"]) == (
        "Ada@Example.com",  # raw: the engine trims and lower-cases when it sends
        "CA",
        date(1990, 12, 10),
    )
    assert first["enrolled_at"] == datetime(2026, 1, 5, 10, tzinfo=timezone.utc)
    # Text is kept as it is (the engine decides that "  " is no value); no zone means UTC.
    assert (second["email"], second["state"], second["date_of_birth"]) == ("  ", "  ", None)
    assert second["enrolled_at"] == datetime(2026, 2, 1, tzinfo=timezone.utc)


def test_loading_again_updates_rows_by_primary_key(engine, tmp_path):
    header = "reward_id,title,kind,cost_points,enabled,in_stock,actionable\n"
    path = write(
        tmp_path,
        "rewards.csv",
        header + "1,$5 off,discount_voucher,100,true,yes,1\n2,Tote,custom,800,false,no,0\n",
    )
    load_file(engine, *plan_load([path]))
    path.write_text(
        header + "2,Tote bag,custom,750,TRUE,True,t\n2,Tote bag,custom,700,TRUE,True,t\n"
    )
    again = load_file(engine, *plan_load([path]))

    assert (again.rows, again.loaded, again.errors) == (2, 1, [])  # the last row of a key wins
    found = [
        (r["reward_id"], r["title"], r["cost_points"], r["enabled"])
        for r in rows(engine, schema.rewards)
    ]
    assert found == [(1, "$5 off", 100, True), (2, "Tote bag", 700, True)]


def test_parquet_files_load_with_their_own_types(engine, tmp_path):
    frame = pd.DataFrame(
        {
            "customer_id": [1, 2],
            "email": ["a@example.com", None],
            "enrolled_at": pd.to_datetime(["2026-01-05T10:00:00Z", "2026-02-01T00:00:00Z"]),
            "date_of_birth": [date(1990, 12, 10), None],
        }
    )
    path = tmp_path / "customers.parquet"
    frame.to_parquet(path)
    result = load_file(engine, *plan_load([path]))

    assert (result.loaded, result.errors) == (2, [])
    first, second = rows(engine, schema.customers)
    assert first["enrolled_at"] == datetime(2026, 1, 5, 10, tzinfo=timezone.utc)
    assert (first["date_of_birth"], second["email"]) == (date(1990, 12, 10), None)


def test_a_row_naming_a_missing_parent_costs_that_row(engine, tmp_path):
    files = [
        write(
            tmp_path,
            "audience_members.csv",
            "audience_slug,customer_id,joined_at\n"
            "vip,1,2026-01-01\nvip,99,2026-01-01\nnope,1,2026-01-01\n",
        ),  # fmt: skip
        write(tmp_path, "customers.csv", "customer_id,enrolled_at\n1,2026-01-01\n"),
        write(tmp_path, "audiences.csv", "slug,name,created_at\nvip,VIP,2026-01-01\n"),
    ]
    plans = plan_load(files)
    assert [p.table.name for p in plans] == ["audiences", "customers", "audience_members"]
    members = [load_file(engine, plan) for plan in plans][-1]

    assert members.loaded == 1
    assert [(e.line, e.message) for e in members.errors] == [
        (3, "customer_id names no row of customers"),
        (4, "audience_slug names no row of audiences"),
    ]


def test_a_table_added_to_the_schema_loads_without_code_changes(engine, tmp_path):
    referrals = Table(
        "referrals_demo",
        MetaData(),
        Column("referral_id", Integer, primary_key=True, autoincrement=False),
        Column("referrer_id", Integer, nullable=False),
        Column("note", Text),
    )
    referrals.create(engine)
    path = write(tmp_path, "referrals_demo.csv", "referral_id,referrer_id,note\n1,7,hi\n2,,x\n")
    result = load_file(engine, LoadPlan(path, referrals))

    assert result.loaded == 1
    assert [(e.line, e.message) for e in result.errors] == [
        (3, "referrer_id is empty; referrals_demo requires it")
    ]
    referrals.drop(engine)


@pytest.mark.parametrize(
    ("name", "text", "says"),
    [
        ("orders.csv", "a\n1\n", "'orders' is not a table of the reference schema"),
        ("customers.txt", "a\n", "not a .csv or .parquet file"),
        ("customers.csv", "customer_id,emial\n", "column 'emial' is not a column of customers"),
        ("customers.csv", "customer_id,email\n1,a\n", "customers needs the column(s) enrolled_at"),
        ("customers.csv", "", "the file is empty"),
        ("customers.parquet", "not parquet", "cannot be read"),
    ],
)
def test_a_file_that_cannot_be_loaded_at_all_says_why(engine, tmp_path, name, text, says):
    path = write(tmp_path, name, text)
    with pytest.raises(LoadError, match=re.escape(says)):
        for plan in plan_load([path]):
            load_file(engine, plan)
    assert rows(engine, schema.customers) == []


def test_a_missing_file_and_two_files_for_one_table_are_refused(tmp_path):
    with pytest.raises(LoadError, match="no such file"):
        plan_load([tmp_path / "customers.csv"])
    one = write(tmp_path, "customers.csv", "customer_id\n")
    (tmp_path / "other").mkdir()
    two = write(tmp_path / "other", "customers.csv", "customer_id\n")
    with pytest.raises(LoadError, match="both fill customers"):
        plan_load([one, two])
    with pytest.raises(LoadError, match="single file"):
        plan_load([one, two], table="customers")


def test_a_row_the_database_refuses_costs_that_row_alone(engine, tmp_path):
    # tiers.name is unique: the database refuses the second Gold, the rest of the file loads.
    tiers = "1,Bronze,1,0,499\n2,Gold,2,500,\n3,Gold,3,1500,\n4,Platinum,4,5000,\n"
    path = write(tmp_path, "tiers.csv", "tier_id,name,position,lower_bound,upper_bound\n" + tiers)
    result = load_file(engine, *plan_load([path]))

    assert result.loaded == 3
    ((line, message),) = [(e.line, e.message) for e in result.errors]
    assert line == 4 and message.startswith("the database refused the row:")
    assert [r["name"] for r in rows(engine, schema.tiers)] == ["Bronze", "Gold", "Platinum"]


def test_a_file_that_breaks_mid_way_says_how_much_was_loaded(engine, tmp_path):
    good = "".join(f"{n},Tier {n},{n},{n * 100},\n" for n in range(1, 6))
    path = write(
        tmp_path,
        "tiers.csv",
        "tier_id,name,position,lower_bound,upper_bound\n" + good + "6,Six,6,600,,extra,cells\n",
    )
    with pytest.raises(LoadError, match=r"cannot be read .*; 4 row\(s\) before it were loaded"):
        load_file(engine, plan_load([path])[0], chunk_rows=4)
    assert len(rows(engine, schema.tiers)) == 4
