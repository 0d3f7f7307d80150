"""The points-expiring-soon notice: who is warned today, and about which expiry date.

The rule, at day granularity in UTC (the flow runs daily):

- expiry date ``E`` = the UTC date of ``last_activity_at`` + ``expiry_period_days``;
- with ``N = expiry_notice_days``, a customer is due on day ``D`` when ``E - N <= D < E``:
  from exactly N days before expiry (the notice boundary, inclusive) up to the day before;
  on ``E`` itself the points are gone and a warning would be a lie;
- and only while ``points_balance > 0``: there is nothing to lose at zero.

A notice is keyed by ``(customer_id, E as ISO date)``: re-running the day sends nothing new,
while new activity moves ``E`` and so makes a new key, hence a new notice.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

import numpy as np
import pandas as pd

from attentive_sync.engine.notices._frames import require_columns

EXPIRY_COLUMNS = ["customer_id", "points_to_expire", "expire_points_at", "notice_days"]


@dataclass(frozen=True)
class ExpirySettings:
    """The expiry part of ``program_settings``; periods are checked only when expiry is on."""

    points_expiry_enabled: bool
    expiry_period_days: int
    expiry_notice_days: int

    def __post_init__(self) -> None:
        if not self.points_expiry_enabled:
            return
        if self.expiry_period_days < 1:
            raise ValueError(f"expiry_period_days must be >= 1, got {self.expiry_period_days}")
        if self.expiry_notice_days < 1:
            raise ValueError(f"expiry_notice_days must be >= 1, got {self.expiry_notice_days}")


@dataclass(frozen=True)
class ExpiryCounts:
    """Report counts; ``due == already_noticed + to_send`` always holds."""

    considered: int = 0
    with_balance: int = 0
    due: int = 0
    already_noticed: int = 0
    to_send: int = 0


@dataclass(frozen=True)
class ExpiryResult:
    """The notices to send on ``as_of``, or an empty frame and the reason there are none."""

    as_of: date
    notices: pd.DataFrame
    counts: ExpiryCounts
    skipped_reason: str | None = None


def empty_expiry_notices() -> pd.DataFrame:
    frame = pd.DataFrame({column: pd.Series(dtype="int64") for column in EXPIRY_COLUMNS})
    frame["expire_points_at"] = frame["expire_points_at"].astype(object)
    return frame


def expiry_disabled(as_of: date) -> ExpiryResult:
    return ExpiryResult(as_of, empty_expiry_notices(), ExpiryCounts(), "points expiry is disabled")


def activity_window(settings: ExpirySettings, as_of: date) -> tuple[datetime, datetime]:
    """The ``[start, end)`` of last-activity timestamps that are due on ``as_of``.

    ``E - N <= D < E`` is ``D + 1 <= E <= D + N``, i.e. an activity day in
    ``[D + 1 - P, D + N - P]``; as timestamps, midnight to midnight UTC. The SQL query uses
    this to read only candidates instead of every customer.
    """
    first_day = as_of + timedelta(days=1 - settings.expiry_period_days)
    end_day = first_day + timedelta(days=settings.expiry_notice_days)
    return _midnight(first_day), _midnight(end_day)


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=timezone.utc)


def _expiry_days(last_activity: pd.Series, period_days: int) -> pd.Series:
    """UTC midnight of each expiry date (NaT where there was never any activity)."""
    moments = pd.to_datetime(last_activity, utc=True, format="ISO8601")
    return moments.dt.normalize() + pd.Timedelta(days=period_days)


def _noticed_mask(due: pd.DataFrame, already_noticed: Collection[tuple[int, str]]) -> np.ndarray:
    if due.empty or not already_noticed:
        return np.zeros(len(due), dtype=bool)
    keys = pd.MultiIndex.from_arrays([due["customer_id"], due["expire_points_at"]])
    return keys.isin(list(already_noticed))


def compute_expiry_notices(
    customers: pd.DataFrame,
    settings: ExpirySettings,
    as_of: date,
    already_noticed: Collection[tuple[int, str]],
) -> ExpiryResult:
    """Expiry notices due on ``as_of`` that no earlier run already sent for the same date."""
    if not settings.points_expiry_enabled:
        return expiry_disabled(as_of)
    require_columns(customers, ("customer_id", "last_activity_at", "points_balance"), "customers")

    balance = customers["points_balance"].fillna(0).astype("int64")
    expires = _expiry_days(customers["last_activity_at"], settings.expiry_period_days)
    today = pd.Timestamp(as_of, tz="UTC")
    notice = pd.Timedelta(days=settings.expiry_notice_days)
    due_mask = ((expires - notice) <= today) & (today < expires) & (balance > 0)

    due = pd.DataFrame(
        {
            "customer_id": customers["customer_id"][due_mask].astype("int64"),
            "points_to_expire": balance[due_mask],
            "expire_points_at": expires[due_mask].dt.strftime("%Y-%m-%d").astype(object),
            "notice_days": settings.expiry_notice_days,
        },
        columns=EXPIRY_COLUMNS,
    )
    noticed = _noticed_mask(due, already_noticed)
    notices = due[~noticed].sort_values("customer_id", kind="stable").reset_index(drop=True)
    counts = ExpiryCounts(
        considered=len(customers),
        with_balance=int((balance > 0).sum()),
        due=len(due),
        already_noticed=int(noticed.sum()),
        to_send=len(notices),
    )
    return ExpiryResult(as_of, notices, counts, None)
