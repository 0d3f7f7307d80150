import json

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attentive_sync.engine.notices import ReminderCounts, compute_reward_reminders
from attentive_sync.engine.notices.reminder import REMINDER_COLUMNS, sendable_rewards

from .notices_scenario import (
    APPROVED_IN_INTERVAL,
    BALANCES,
    EXPECTED_REMINDERS,
    INTERVAL,
    LISTED,
    NOTIFIED,
    frame,
    rewards_frame,
)

# Reproducible examples, and no per-example deadline: the CPU is shared, the rule is not.
PROPERTY = settings(deadline=None, derandomize=True)


def _compute(rewards=None, notified=NOTIFIED, balances=BALANCES):
    return compute_reward_reminders(
        frame(balances, "points_balance"),
        frame(APPROVED_IN_INTERVAL, "points_approved_in_interval"),
        rewards_frame() if rewards is None else rewards,
        notified,
        INTERVAL,
    )


def test_hand_computed_program_reminds_exactly_the_expected_customers():
    result = _compute()
    rows = result.notices.to_dict("records")
    assert list(result.notices.columns) == REMINDER_COLUMNS
    assert [row["customer_id"] for row in rows] == list(EXPECTED_REMINDERS)
    for row in rows:
        balance, approved, listed = EXPECTED_REMINDERS[row["customer_id"]]
        assert row["points_balance"] == balance
        assert row["points_approved_in_interval"] == approved
        assert row["available_rewards"] == [LISTED[reward_id] for reward_id in listed]
        assert row["available_rewards_count"] == len(listed)
        assert row["cheapest_reward_title"] == "$5 off"
        assert row["cheapest_reward_cost"] == 100
        assert row["points_interval_start_date"] == "2024-02-15"
    assert result.counts == ReminderCounts(considered=7, eligible=5, already_notified=2, to_send=3)
    assert result.skipped_reason is None


def test_listed_rewards_are_plain_json_values():
    listed = _compute().notices.at[0, "available_rewards"]
    assert json.loads(json.dumps(listed)) == [LISTED[1], LISTED[2]]


def test_out_of_stock_disabled_inactionable_and_unsupported_rewards_are_never_listed():
    assert sendable_rewards(rewards_frame())["reward_id"].tolist() == [1, 2, 9]


def test_a_program_with_only_unsupported_kinds_sends_no_reminders():
    rewards = rewards_frame()
    only_unsupported = rewards[rewards["kind"].isin(["point_slider", "free_product_voucher"])]
    result = _compute(rewards=only_unsupported)
    assert result.notices.empty
    assert result.counts == ReminderCounts(considered=7)
    assert "supported kind" in result.skipped_reason


def test_null_flags_never_make_a_reward_sendable():
    rewards = rewards_frame().astype({"enabled": object})
    rewards.loc[rewards["reward_id"] == 1, "enabled"] = None
    assert sendable_rewards(rewards)["reward_id"].tolist() == [2, 9]


def test_a_second_run_with_every_reminder_recorded_sends_nothing():
    first = _compute()
    again = _compute(notified=NOTIFIED | set(first.notices["customer_id"]))
    assert again.notices.empty
    assert again.counts == ReminderCounts(considered=7, eligible=5, already_notified=5, to_send=0)


def test_missing_columns_are_named():
    with pytest.raises(ValueError, match="balances is missing column"):
        compute_reward_reminders(
            pd.DataFrame({"customer_id": [1]}),
            frame(APPROVED_IN_INTERVAL, "points_approved_in_interval"),
            rewards_frame(),
            set(),
            INTERVAL,
        )


reward_rows = st.lists(
    st.tuples(
        st.integers(0, 500),  # cost
        st.booleans(),
        st.booleans(),
        st.booleans(),
        st.sampled_from(["discount_voucher", "custom", "point_slider", "seamless_free_product"]),
    ),
    max_size=8,
)


@PROPERTY
@given(rows=reward_rows, balances=st.lists(st.integers(-50, 600), min_size=1, max_size=30))
def test_available_rewards_match_a_row_by_row_filter(rows, balances):
    rewards = pd.DataFrame(
        [
            (i, f"r{i}", kind, cost, enabled, stock, actionable)
            for i, (cost, enabled, stock, actionable, kind) in enumerate(rows)
        ],
        columns=["reward_id", "title", "kind", "cost_points", "enabled", "in_stock", "actionable"],
    )
    result = _compute(rewards=rewards, notified=set(), balances=dict(enumerate(balances)))
    listed = {row.customer_id: row.available_rewards for row in result.notices.itertuples()}
    for customer_id, balance in enumerate(balances):
        expected = sorted(
            (cost, i)
            for i, (cost, enabled, stock, actionable, kind) in enumerate(rows)
            if enabled
            and stock
            and actionable
            and cost <= balance
            and kind in ("discount_voucher", "custom")
        )
        got = [(r["cost_points"], r["reward_id"]) for r in listed.get(customer_id, [])]
        assert got == expected
    assert result.counts.eligible == result.counts.already_notified + result.counts.to_send


def test_duplicate_balance_rows_are_refused():
    balances = pd.DataFrame({"customer_id": [1, 1], "points_balance": [300, 300]})
    with pytest.raises(ValueError, match="more than one row"):
        compute_reward_reminders(
            balances,
            frame(APPROVED_IN_INTERVAL, "points_approved_in_interval"),
            rewards_frame(),
            set(),
            INTERVAL,
        )
