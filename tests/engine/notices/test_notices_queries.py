"""The SQL side, on the same hand-computed numbers as the pure tests."""

from datetime import date, timedelta

import pytest
import sqlalchemy as sa

from attentive_sync.engine.notices import (
    ExpiryCounts,
    ReminderCounts,
    plan_expiry_notices,
    plan_reward_reminders,
    queries,
)

from .loyalty_db import program_settings, utc
from .notices_scenario import (
    APPROVED_IN_INTERVAL,
    AS_OF,
    BALANCES,
    ENABLED_AT,
    EXPECTED_EXPIRY,
    EXPECTED_REMINDERS,
    EXPIRY_AS_OF,
    INTERVAL,
    NOTIFIED,
    record_sent,
    seed_expiry_data,
    seed_program,
    seed_reminder_data,
)


@pytest.fixture
def reminder_db(engine):
    with engine.begin() as conn:
        seed_program(conn)
        seed_reminder_data(conn)
    return engine


@pytest.fixture
def expiry_db(engine):
    with engine.begin() as conn:
        seed_program(conn)
        seed_expiry_data(conn)
    return engine


def _as_dict(frame, value_column):
    return dict(zip(frame["customer_id"], frame[value_column], strict=True))


def test_balances_sum_approved_points_only(reminder_db):
    with reminder_db.connect() as conn:
        balances = queries.load_balances(conn)
    assert str(balances["points_balance"].dtype) == "int64"
    assert _as_dict(balances, "points_balance") == BALANCES


def test_points_approved_in_interval_respect_both_bounds(reminder_db):
    with reminder_db.connect() as conn:
        approved = queries.load_points_approved(conn, INTERVAL)
    assert _as_dict(approved, "points_approved_in_interval") == APPROVED_IN_INTERVAL


def test_notified_customers_are_those_with_an_event_or_a_reminder_in_the_interval(reminder_db):
    with reminder_db.connect() as conn:
        assert set(queries.load_reminder_notified_ids(conn, INTERVAL).tolist()) == NOTIFIED


def test_program_settings_come_back_as_aware_utc(reminder_db):
    with reminder_db.connect() as conn:
        settings = queries.load_program_settings(conn)
    assert settings.reward_reminder_enabled_at == ENABLED_AT
    assert settings.reward_reminder_enabled_at.utcoffset() == timedelta(0)
    assert (settings.expiry.expiry_period_days, settings.expiry.expiry_notice_days) == (90, 7)


def test_planned_reminders_match_the_hand_computed_ones(reminder_db):
    with reminder_db.connect() as conn:
        result = plan_reward_reminders(conn, AS_OF)
    assert result.interval == INTERVAL
    got = {
        row.customer_id: (
            row.points_balance,
            row.points_approved_in_interval,
            [reward["reward_id"] for reward in row.available_rewards],
        )
        for row in result.notices.itertuples()
    }
    assert got == EXPECTED_REMINDERS
    assert result.counts == ReminderCounts(considered=7, eligible=5, already_notified=2, to_send=3)


def test_rerun_after_recording_the_reminders_sends_nothing_new(reminder_db):
    with reminder_db.begin() as conn:
        first = plan_reward_reminders(conn, AS_OF)
        keys = [(cid, first.interval.period_key) for cid in first.notices["customer_id"]]
        record_sent(conn, "reward_reminder", keys)
    with reminder_db.connect() as conn:
        again = plan_reward_reminders(conn, AS_OF)
    assert again.notices.empty
    assert again.counts == ReminderCounts(considered=7, eligible=5, already_notified=5, to_send=0)


def test_no_reminder_before_the_first_interval_ends(engine):
    with engine.begin() as conn:
        seed_program(conn, enabled_at=utc(2024, 3, 1))
    with engine.connect() as conn:
        result = plan_reward_reminders(conn, utc(2024, 3, 20))
    assert result.notices.empty
    assert result.skipped_reason == "the first reminder interval ends at 2024-04-01T00:00:00+00:00"


def test_no_reminder_when_the_feature_is_off(engine):
    with engine.begin() as conn:
        seed_program(conn, enabled_at=None)
    with engine.connect() as conn:
        assert plan_reward_reminders(conn, AS_OF).skipped_reason == (
            "the reward reminder is not enabled"
        )


def test_missing_program_settings_row_is_a_named_error(engine):
    with engine.connect() as conn, pytest.raises(queries.ProgramSettingsMissing, match="id = 1"):
        plan_reward_reminders(conn, AS_OF)


def test_planned_expiry_notices_match_the_hand_computed_ones(expiry_db):
    with expiry_db.connect() as conn:
        result = plan_expiry_notices(conn, EXPIRY_AS_OF)
    got = {
        row.customer_id: (row.points_to_expire, row.expire_points_at)
        for row in result.notices.itertuples()
    }
    assert got == EXPECTED_EXPIRY
    # The window reads 7 candidates (101, 103, 105-109); 105 has nothing left to lose.
    assert result.counts == ExpiryCounts(
        considered=7, with_balance=6, due=6, already_noticed=1, to_send=5
    )


def test_only_future_expiry_keys_are_read_back(expiry_db):
    with expiry_db.connect() as conn:
        keys = queries.load_expiry_notice_keys(conn, EXPIRY_AS_OF)
    assert keys == {(107, "2024-06-14"), (108, "2024-06-12")}


def test_expiry_rerun_after_recording_sends_nothing_new(expiry_db):
    with expiry_db.begin() as conn:
        first = plan_expiry_notices(conn, EXPIRY_AS_OF)
        keys = list(
            zip(first.notices["customer_id"], first.notices["expire_points_at"], strict=True)
        )
        record_sent(conn, "points_expiring", keys)
    with expiry_db.connect() as conn:
        again = plan_expiry_notices(conn, EXPIRY_AS_OF)
    assert again.notices.empty
    assert again.counts.already_noticed == 6


def test_expiry_disabled_reads_nothing_and_says_why(engine):
    with engine.begin() as conn:
        seed_program(conn, expiry_enabled=False)
        seed_expiry_data(conn)
    with engine.connect() as conn:
        result = plan_expiry_notices(conn, date(2024, 6, 10))
    assert result.notices.empty
    assert result.skipped_reason == "points expiry is disabled"


def test_settings_with_a_null_enable_flag_read_as_disabled(engine):
    with engine.begin() as conn:
        conn.execute(sa.insert(program_settings), [{"id": 1, "points_expiry_enabled": None}])
    with engine.connect() as conn:
        assert plan_expiry_notices(conn, EXPIRY_AS_OF).skipped_reason == "points expiry is disabled"
