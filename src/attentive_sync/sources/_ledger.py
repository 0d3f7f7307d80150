"""Vectorised points activity for the seed: enrolment times and the points ledger.

Ten million ledger rows cannot be drawn one ``random()`` call at a time in reasonable
time, so each chunk of customers gets its whole ledger from a handful of numpy draws.
Times are int64 microseconds since the epoch (UTC) until they are turned into text.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import numpy as np

DAY_US = 86_400_000_000
NONE_US = -1  # "no timestamp" in an int64 time array
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

_KINDS = np.array(["earned", "spent", "expired"], dtype=object)
_STATUSES = np.array(["pending", "approved", "void"], dtype=object)
_EARNED_POINTS = np.array([10, 20, 25, 50, 75, 100, 150, 200, 250, 500])
_EARNED_WEIGHTS = np.array([14, 12, 14, 18, 8, 14, 8, 6, 4, 2]) / 100
_SPENT_POINTS = np.array([100, 250, 500, 1000])  # the costs of the seeded rewards


@dataclass(frozen=True)
class Ledger:
    """One chunk's ledger plus the per-customer facts the profile columns derive from."""

    rows: list[tuple[object, ...]]
    last_activity_us: np.ndarray  # per customer; NONE_US when nothing qualifying happened
    lifetime_earned: np.ndarray  # approved earned points per customer
    entry_count: np.ndarray  # ledger rows per customer


def micros(moment: datetime) -> int:
    """Exact microseconds since the epoch (``timestamp()`` is a float and can be off by one)."""
    return (moment - _EPOCH) // timedelta(microseconds=1)


def enrolment_times(rng: np.random.Generator, n: int, now_us: int) -> np.ndarray:
    """Enrolment instants, recent ones likelier (programs grow), from 1 hour to 4 years ago."""
    days_ago = np.clip(rng.exponential(400.0, n), 1 / 24, 4 * 365)
    return now_us - (days_ago * DAY_US).astype(np.int64)


def to_text(us: np.ndarray) -> list[str | None]:
    """UTC microseconds as ``YYYY-MM-DD HH:MM:SS.ffffff`` text; ``NONE_US`` becomes None.

    It is the exact text SQLAlchemy stores for a naive UTC datetime on SQLite, so rows
    written in bulk compare and sort the same as rows written through the ORM layer.
    """
    text = np.char.replace(np.datetime_as_string(us.astype("datetime64[us]")), "T", " ")
    values = text.astype(object)
    values[us == NONE_US] = None
    return values.tolist()


def _statuses(rng: np.random.Generator, kind: np.ndarray, recent: np.ndarray) -> np.ndarray:
    # Earned points stay pending for a while (returns window), so pending entries are recent;
    # a few entries of every age are voided (refunds, cancelled redemptions).
    roll = rng.random(kind.size)
    status = np.where(roll < 0.05, 2, 1)
    status[(kind == 0) & recent & (roll > 0.5)] = 0
    status[kind == 2] = 1  # expiries are bookkeeping and never voided
    return status


def ledger_for(
    rng: np.random.Generator,
    enrolled_us: np.ndarray,
    first_customer_id: int,
    first_entry_id: int,
    now_us: int,
    window_start_us: int,
) -> Ledger:
    """About ten entries per customer between enrolment (or the window start) and ``now``."""
    n = enrolled_us.size
    counts = rng.poisson(rng.gamma(2.0, 5.0, n))  # overdispersed: a few very busy customers
    owner = np.repeat(np.arange(n), counts)
    start = np.maximum(enrolled_us, window_start_us)[owner]
    created = start + (rng.random(owner.size) * (now_us - start)).astype(np.int64)
    order = np.lexsort((created, owner))
    owner, created = owner[order], created[order]

    size = owner.size
    kind = rng.choice(3, size, p=[0.8, 0.14, 0.06])
    points = np.where(
        kind == 0,
        rng.choice(_EARNED_POINTS, size, p=_EARNED_WEIGHTS),
        -np.where(kind == 1, rng.choice(_SPENT_POINTS, size), rng.integers(10, 300, size)),
    )
    status = _statuses(rng, kind, created > now_us - 30 * DAY_US)
    approved = status == 1
    # A balance never goes below zero: void the debits of anyone who would be overdrawn.
    balance = np.bincount(owner, weights=points * approved, minlength=n)
    overdrawn = (balance < 0)[owner] & (points < 0)
    status[overdrawn] = 2
    approved = status == 1

    delay = (rng.exponential(2.0, owner.size) * DAY_US).astype(np.int64)
    approved_at = np.where(approved, np.minimum(created + delay, now_us), NONE_US)
    qualifying = approved & (kind < 2)
    last_activity = np.full(n, NONE_US, dtype=np.int64)
    np.maximum.at(last_activity, owner[qualifying], created[qualifying])

    rows = list(
        zip(
            range(first_entry_id, first_entry_id + owner.size),
            (owner + first_customer_id).tolist(),
            points.tolist(),
            _KINDS[kind].tolist(),
            _STATUSES[status].tolist(),
            to_text(created),
            to_text(approved_at),
            strict=True,
        )
    )
    earned = np.bincount(owner, weights=points * (approved & (kind == 0)), minlength=n)
    return Ledger(rows, last_activity, earned.astype(np.int64), counts)
