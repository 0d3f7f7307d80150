from datetime import date, datetime, timedelta, timezone

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attentive_sync.engine.notices import ExpiryCounts, ExpirySettings, compute_expiry_notices
from attentive_sync.engine.notices.expiry import EXPIRY_COLUMNS, activity_window

from .notices_scenario import EXPECTED_EXPIRY, EXPIRY_AS_OF, EXPIRY_BALANCES, EXPIRY_CUSTOMER_ROWS

# Reproducible examples, and no per-example deadline: the CPU is shared, the rule is not.
PROPERTY = settings(deadline=None, derandomize=True)

SETTINGS = ExpirySettings(points_expiry_enabled=True, expiry_period_days=90, expiry_notice_days=7)
ALREADY = {(107, "2024-06-14"), (108, "2024-06-12")}


def _customers() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": [row[0] for row in EXPIRY_CUSTOMER_ROWS],
            "last_activity_at": [row[2] for row in EXPIRY_CUSTOMER_ROWS],
            "points_balance": [EXPIRY_BALANCES[row[0]] for row in EXPIRY_CUSTOMER_ROWS],
        }
    )


def _one(last_activity: datetime, balance: int, as_of: date, noticed=frozenset()):
    customers = pd.DataFrame(
        {"customer_id": [1], "last_activity_at": [last_activity], "points_balance": [balance]}
    )
    return compute_expiry_notices(customers, SETTINGS, as_of, noticed)


def test_hand_computed_program_warns_exactly_the_expected_customers():
    result = compute_expiry_notices(_customers(), SETTINGS, EXPIRY_AS_OF, ALREADY)
    assert list(result.notices.columns) == EXPIRY_COLUMNS
    # 106 never had activity: without the enrolment fallback (done in SQL) it is not due here.
    expected = {cid: value for cid, value in EXPECTED_EXPIRY.items() if cid != 106}
    assert {
        row.customer_id: (row.points_to_expire, row.expire_points_at)
        for row in result.notices.itertuples()
    } == expected
    assert set(result.notices["notice_days"]) == {7}
    assert result.counts == ExpiryCounts(
        considered=9, with_balance=8, due=5, already_noticed=1, to_send=4
    )


def test_expiry_exactly_on_the_notice_boundary_is_due():
    # Activity on Mar 19 -> expiry Jun 17; the notice window opens Jun 10 (17 - 7).
    activity = datetime(2024, 3, 19, 18, tzinfo=timezone.utc)
    assert len(_one(activity, 10, date(2024, 6, 10)).notices) == 1
    assert _one(activity, 10, date(2024, 6, 9)).notices.empty
    assert len(_one(activity, 10, date(2024, 6, 16)).notices) == 1
    assert _one(activity, 10, date(2024, 6, 17)).notices.empty


def test_zero_and_negative_balances_get_no_notice():
    activity = datetime(2024, 3, 19, tzinfo=timezone.utc)
    assert _one(activity, 0, date(2024, 6, 12)).notices.empty
    assert _one(activity, -5, date(2024, 6, 12)).notices.empty


def test_disabled_expiry_gives_nothing_and_says_why():
    disabled = ExpirySettings(
        points_expiry_enabled=False, expiry_period_days=0, expiry_notice_days=0
    )
    result = compute_expiry_notices(_customers(), disabled, EXPIRY_AS_OF, set())
    assert result.notices.empty
    assert list(result.notices.columns) == EXPIRY_COLUMNS
    assert result.skipped_reason == "points expiry is disabled"


def test_a_moved_expiry_date_is_a_new_key():
    noticed = {(1, "2024-06-17")}
    assert _one(
        datetime(2024, 3, 19, tzinfo=timezone.utc), 10, date(2024, 6, 12), noticed
    ).notices.empty
    moved = _one(datetime(2024, 3, 20, tzinfo=timezone.utc), 10, date(2024, 6, 12), noticed)
    assert moved.notices["expire_points_at"].tolist() == ["2024-06-18"]
    assert moved.counts.already_noticed == 0


def test_activity_stored_as_sqlite_text_is_read_as_utc():
    result = _one("2024-03-19 23:59:59.000000", 10, date(2024, 6, 10))
    assert result.notices["expire_points_at"].tolist() == ["2024-06-17"]


@pytest.mark.parametrize(("period", "notice"), [(0, 7), (90, 0)])
def test_enabled_expiry_needs_positive_periods(period, notice):
    with pytest.raises(ValueError, match="must be >= 1"):
        ExpirySettings(
            points_expiry_enabled=True, expiry_period_days=period, expiry_notice_days=notice
        )


def test_missing_columns_are_named():
    with pytest.raises(ValueError, match="customers is missing column.*last_activity_at"):
        compute_expiry_notices(
            pd.DataFrame({"customer_id": [1], "points_balance": [3]}), SETTINGS, EXPIRY_AS_OF, set()
        )


activities = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(timezone.utc)
)
settings_strategy = st.builds(
    ExpirySettings, st.just(True), st.integers(1, 400), st.integers(1, 30)
)


@PROPERTY
@given(activity=activities, settings=settings_strategy)
def test_each_expiry_date_is_warned_on_exactly_notice_days_consecutive_days(activity, settings):
    customers = pd.DataFrame(
        {"customer_id": [1], "last_activity_at": [activity], "points_balance": [5]}
    )
    expiry = activity.date() + timedelta(days=settings.expiry_period_days)
    due_days = [
        day
        for offset in range(-settings.expiry_notice_days - 2, 3)
        if not compute_expiry_notices(
            customers, settings, day := expiry + timedelta(days=offset), set()
        ).notices.empty
    ]
    first = expiry - timedelta(days=settings.expiry_notice_days)
    assert due_days == [first + timedelta(days=i) for i in range(settings.expiry_notice_days)]


@PROPERTY
@given(activity=activities, settings=settings_strategy, as_of_offset=st.integers(-500, 500))
def test_sql_activity_window_selects_exactly_the_due_customers(activity, settings, as_of_offset):
    as_of = activity.date() + timedelta(days=as_of_offset)
    start, end = activity_window(settings, as_of)
    customers = pd.DataFrame(
        {"customer_id": [1], "last_activity_at": [activity], "points_balance": [5]}
    )
    due = not compute_expiry_notices(customers, settings, as_of, set()).notices.empty
    assert (start <= activity < end) == due
