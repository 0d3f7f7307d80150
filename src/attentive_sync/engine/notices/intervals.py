"""Reward-reminder intervals: rolling calendar months anchored at the moment of enabling.

Interval ``k`` (k = 0, 1, 2, ...) is ``[anchor + k months, anchor + (k + 1) months)``, end
exclusive. A reminder is computed for an interval only once it has ended, because it reports
the points approved *within* it; so the reminder series starts one month after the feature
was enabled, and each reminder covers the month that just closed.

Month ends: every boundary is computed from the anchor (``anchor + k months``), never chained
from the previous boundary, and a day the target month lacks is clipped to that month's last
day. Enabled on Jan 31 10:30 UTC, the boundaries are Feb 29 (or 28), Mar 31, Apr 30, May 31,
all at 10:30: the interval keeps its day of month whenever the month has it, instead of
drifting to the 28th for good after the first February. All arithmetic is in UTC.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import NamedTuple

import pandas as pd


class Interval(NamedTuple):
    """One reminder interval; ``end`` is exclusive."""

    start: datetime
    end: datetime

    @property
    def period_key(self) -> str:
        """Dedupe key in ``notices_sent``: the start date (intervals are a month apart)."""
        return self.start.date().isoformat()


def as_utc(value: datetime, name: str) -> datetime:
    """Reject naive datetimes: a guessed timezone would shift every boundary silently."""
    if value.tzinfo is None:
        raise ValueError(f"{name} must be timezone-aware (UTC), got naive {value.isoformat()}")
    return value.astimezone(timezone.utc)


def boundary(anchor: datetime, months: int) -> datetime:
    """``anchor + months`` calendar months, clipped to the month's last day (see module doc)."""
    shifted = pd.Timestamp(as_utc(anchor, "anchor")) + pd.DateOffset(months=months)
    return shifted.to_pydatetime()


def interval_index(enabled_at: datetime, moment: datetime) -> int:
    """Index of the interval containing ``moment``; -1 before the reminder was enabled."""
    anchor = as_utc(enabled_at, "enabled_at")
    moment = as_utc(moment, "moment")
    if moment < anchor:
        return -1
    months = (moment.year - anchor.year) * 12 + (moment.month - anchor.month)
    # The boundary for `months` falls in moment's own calendar month; if it is still ahead
    # of moment, moment belongs to the previous interval.
    return months if boundary(anchor, months) <= moment else months - 1


def nth_interval(enabled_at: datetime, index: int) -> Interval:
    if index < 0:
        raise ValueError(f"interval index must be >= 0, got {index}")
    return Interval(boundary(enabled_at, index), boundary(enabled_at, index + 1))


def interval_containing(enabled_at: datetime, moment: datetime) -> Interval | None:
    """The interval ``moment`` falls in, or None before the reminder was enabled."""
    index = interval_index(enabled_at, moment)
    return nth_interval(enabled_at, index) if index >= 0 else None


def last_completed_interval(enabled_at: datetime, as_of: datetime) -> Interval | None:
    """The latest interval whose (exclusive) end is at or before ``as_of``.

    None until the first interval has ended.
    """
    index = interval_index(enabled_at, as_of) - 1
    return nth_interval(enabled_at, index) if index >= 0 else None
