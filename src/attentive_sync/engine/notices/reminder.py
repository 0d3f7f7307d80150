"""The recurring reward reminder: who is reminded for an interval, and with which rewards.

A reward can be listed when it is enabled, in stock, actionable, of a supported kind and
affordable (``cost_points <= points_balance``). Only the last condition depends on the
customer, so with the sendable rewards sorted by cost, a customer's available rewards are
always a *prefix* of that list: ``numpy.searchsorted`` gives every customer's count in one
vectorised call, and the list itself is a shared prefix object, so a million customers
cost a million references rather than millions of dicts.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from attentive_sync.domain.loyalty.rewards import UNSUPPORTED_REWARD_KINDS
from attentive_sync.engine.notices._frames import flag, require_columns
from attentive_sync.engine.notices.intervals import Interval

REWARD_COLUMNS = ("reward_id", "title", "kind", "cost_points", "enabled", "in_stock", "actionable")
LISTED_REWARD_FIELDS = ["reward_id", "title", "kind", "cost_points"]
REMINDER_COLUMNS = [
    "customer_id",
    "points_balance",
    "points_approved_in_interval",
    "points_interval_start_date",
    "available_rewards",
    "available_rewards_count",
    "cheapest_reward_title",
    "cheapest_reward_cost",
]


@dataclass(frozen=True)
class ReminderCounts:
    """Report counts; ``eligible == already_notified + to_send`` always holds."""

    considered: int = 0
    eligible: int = 0
    already_notified: int = 0
    to_send: int = 0


@dataclass(frozen=True)
class ReminderResult:
    """The reminders to send for ``interval``, or an empty frame and the reason there are none.

    Rows share their ``available_rewards`` list with every row of the same count: treat the
    lists as read-only.
    """

    interval: Interval | None
    notices: pd.DataFrame
    counts: ReminderCounts
    skipped_reason: str | None = None


def empty_reminders() -> pd.DataFrame:
    """A zero-row frame with the reminder columns, so callers never branch on shape."""
    frame = pd.DataFrame({column: pd.Series(dtype="int64") for column in REMINDER_COLUMNS})
    for column in ("points_interval_start_date", "available_rewards", "cheapest_reward_title"):
        frame[column] = frame[column].astype(object)
    return frame


def sendable_rewards(rewards: pd.DataFrame) -> pd.DataFrame:
    """Rewards any customer could be offered, cheapest first (ties by id, for stable output)."""
    require_columns(rewards, REWARD_COLUMNS, "rewards")
    usable = (
        flag(rewards["enabled"])
        & flag(rewards["in_stock"])
        & flag(rewards["actionable"])
        & rewards["cost_points"].notna()
        & ~rewards["kind"].isin(UNSUPPORTED_REWARD_KINDS)
    )
    chosen = rewards.loc[usable, LISTED_REWARD_FIELDS].astype(
        {"reward_id": "int64", "cost_points": "int64"}
    )
    return chosen.sort_values(["cost_points", "reward_id"], kind="stable").reset_index(drop=True)


def _reward_prefixes(sendable: pd.DataFrame) -> list[list[dict[str, Any]]]:
    """``prefixes[n]`` is the list of the ``n`` cheapest rewards, as plain JSON-ready dicts."""
    records = [
        {
            "reward_id": int(r.reward_id),
            "title": str(r.title),
            "kind": str(r.kind),
            "cost_points": int(r.cost_points),
        }
        for r in sendable.itertuples(index=False)
    ]
    return [records[:n] for n in range(len(records) + 1)]


def _approved_for(customer_ids: pd.Series, approved: pd.DataFrame) -> np.ndarray:
    """Points approved in the interval per customer, 0 for customers who earned nothing."""
    by_customer = approved.groupby("customer_id")["points_approved_in_interval"].sum()
    return customer_ids.map(by_customer).fillna(0).to_numpy(dtype=np.int64)


def compute_reward_reminders(
    balances: pd.DataFrame,
    approved: pd.DataFrame,
    rewards: pd.DataFrame,
    notified_ids: Collection[int],
    interval: Interval,
) -> ReminderResult:
    """Reminders for ``interval``: customers with at least one available reward, not yet notified.

    ``notified_ids`` holds the customers who got a ``reward_available`` event within the
    interval or already got this interval's reminder; they are counted, never sent twice.
    """
    require_columns(balances, ("customer_id", "points_balance"), "balances")
    require_columns(approved, ("customer_id", "points_approved_in_interval"), "approved")
    if balances["customer_id"].duplicated().any():
        raise ValueError("balances has more than one row for some customer_id")
    sendable = sendable_rewards(rewards)
    if sendable.empty:
        reason = "no reward is enabled, in stock, actionable and of a supported kind"
        return ReminderResult(interval, empty_reminders(), ReminderCounts(len(balances)), reason)

    points = balances["points_balance"].fillna(0).to_numpy(dtype=np.int64)
    counts = np.searchsorted(sendable["cost_points"].to_numpy(), points, side="right")
    eligible = counts > 0
    notified_array = np.fromiter(notified_ids, dtype=np.int64, count=len(notified_ids))
    notified = balances["customer_id"].isin(notified_array).to_numpy() & eligible
    send = eligible & ~notified

    prefixes = _reward_prefixes(sendable)
    ids = balances["customer_id"][send].astype("int64").reset_index(drop=True)
    notices = pd.DataFrame(
        {
            "customer_id": ids,
            "points_balance": points[send],
            "points_approved_in_interval": _approved_for(ids, approved),
            "points_interval_start_date": interval.start.date().isoformat(),
            "available_rewards": pd.Series([prefixes[n] for n in counts[send]], dtype=object),
            "available_rewards_count": counts[send].astype(np.int64),
            "cheapest_reward_title": str(sendable.at[0, "title"]),
            "cheapest_reward_cost": int(sendable.at[0, "cost_points"]),
        },
        columns=REMINDER_COLUMNS,
    )
    notices = notices.sort_values("customer_id", kind="stable").reset_index(drop=True)
    tally = ReminderCounts(len(balances), int(eligible.sum()), int(notified.sum()), len(notices))
    return ReminderResult(interval, notices, tally)
