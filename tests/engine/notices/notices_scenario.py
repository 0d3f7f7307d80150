"""Two small, hand-computed programs: one for the reward reminder, one for points expiry.

The same numbers feed the pure tests (as DataFrames typed in by hand below) and the query
tests (as database rows), so both must agree on every figure.
"""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import sqlalchemy as sa

from attentive_sync.engine.notices import Interval

from .loyalty_db import (
    customers,
    loyalty_events,
    notices_sent,
    points_ledger,
    program_settings,
    rewards,
    utc,
)

# Reminder enabled on Jan 15 09:00; on Mar 20 the last completed interval is Feb 15 - Mar 15.
ENABLED_AT = utc(2024, 1, 15, 9)
AS_OF = utc(2024, 3, 20)
INTERVAL = Interval(utc(2024, 2, 15, 9), utc(2024, 3, 15, 9))
MICROSECOND = timedelta(microseconds=1)

REWARD_ROWS = [
    # (reward_id, title, kind, cost_points, enabled, in_stock, actionable)
    (1, "$5 off", "discount_voucher", 100, True, True, True),
    (2, "Free shipping", "free_shipping", 250, True, True, True),
    (3, "Gift card", "gift_card", 50, True, False, True),  # out of stock
    (4, "Old offer", "custom", 10, False, True, True),  # disabled
    (5, "Store visit", "custom", 20, True, True, False),  # not actionable
    (6, "Slider", "point_slider", 1, True, True, True),  # unsupported kinds from here
    (7, "Free socks", "free_product_voucher", 5, True, True, True),
    (8, "Auto gift", "seamless_free_product", 5, True, True, True),
    (9, "Tote bag", "custom", 400, True, True, True),
]
LISTED = {
    1: {"reward_id": 1, "title": "$5 off", "kind": "discount_voucher", "cost_points": 100},
    2: {"reward_id": 2, "title": "Free shipping", "kind": "free_shipping", "cost_points": 250},
    9: {"reward_id": 9, "title": "Tote bag", "kind": "custom", "cost_points": 400},
}

LEDGER_ROWS = [
    # (entry_id, customer_id, points, kind, status, created_at)
    (1, 1, 300, "earned", "approved", utc(2024, 1, 20)),
    (2, 1, 40, "earned", "approved", INTERVAL.start),  # first instant: counts
    (3, 1, 7, "earned", "approved", INTERVAL.end),  # end is exclusive: balance only
    (4, 1, 3, "earned", "approved", INTERVAL.end - MICROSECOND),  # counts
    (5, 1, -50, "spent", "approved", utc(2024, 3, 1)),
    (6, 1, 1000, "earned", "pending", utc(2024, 3, 1)),
    (7, 1, 500, "earned", "void", utc(2024, 3, 1)),
    (8, 2, 99, "earned", "approved", utc(2024, 3, 1)),
    (9, 2, 500, "earned", "pending", utc(2024, 3, 2)),
    (10, 3, 400, "earned", "approved", utc(2024, 2, 1)),
    (11, 4, 100, "earned", "approved", utc(2024, 2, 20)),
    (12, 6, 600, "earned", "approved", utc(2024, 3, 1)),
    (13, 6, -100, "expired", "approved", utc(2024, 3, 2)),
    (14, 7, 250, "earned", "approved", utc(2024, 1, 20)),
]
EVENT_ROWS = [
    # (event_id, topic, customer_id, occurred_at, state)
    ("ev-3", "reward_available", 3, utc(2024, 3, 1), "done"),  # sent inside: skip customer 3
    ("ev-4", "reward_available", 4, utc(2024, 2, 10), "done"),  # previous interval
    ("ev-4b", "reward_available", 4, utc(2024, 3, 1), "done"),  # done, never sent (dropped)
    ("ev-6", "reward_available", 6, utc(2024, 3, 1), "quarantined"),  # never delivered
    ("ev-6b", "reward_available", 6, utc(2024, 3, 2), "done"),  # done, skipped as stale
    ("ev-6c", "reward_available", 6, utc(2024, 3, 3), "pending"),  # not sent yet
    ("ev-1a", "reward_claimed", 1, utc(2024, 3, 1), "done"),  # another topic
    ("ev-1b", "reward_available", 1, INTERVAL.end, "pending"),  # next interval
]
# The reward_available events Attentive accepted, as the relay notes them in notices_sent.
SENT_EVENTS = [("ev-3", 3), ("ev-4", 4)]
REMINDER_NOTICE_ROWS = [
    # (kind, customer_id, period_key)
    ("reward_reminder", 7, "2024-02-15"),  # this interval's reminder already went out
    ("reward_reminder", 1, "2024-01-15"),  # an earlier interval's
]

# Hand-computed from the rows above.
BALANCES = {1: 300, 2: 99, 3: 400, 4: 100, 5: 0, 6: 500, 7: 250}
APPROVED_IN_INTERVAL = {1: 43, 2: 99, 4: 100, 6: 600}
NOTIFIED = {3, 7}
EXPECTED_REMINDERS = {
    # customer_id: (points_balance, points_approved_in_interval, listed reward ids)
    1: (300, 43, [1, 2]),
    4: (100, 100, [1]),
    6: (500, 600, [1, 2, 9]),
}

# Expiry: 90-day period, 7-day notice, run on Jun 10: due expiry dates are Jun 11 - Jun 17,
# i.e. last activity on Mar 13 - Mar 19 (UTC).
EXPIRY_AS_OF = date(2024, 6, 10)
EXPIRY_CUSTOMER_ROWS = [
    # (customer_id, enrolled_at, last_activity_at)
    (101, utc(2024, 1, 1), utc(2024, 3, 19, 23, 59, 59)),  # E Jun 17: notice boundary, due
    (102, utc(2024, 1, 1), utc(2024, 3, 20)),  # E Jun 18: due from tomorrow
    (103, utc(2024, 1, 1), utc(2024, 3, 13)),  # E Jun 11: last day before expiry, due
    (104, utc(2024, 1, 1), utc(2024, 3, 12, 12)),  # E Jun 10: expired today
    (105, utc(2024, 1, 1), utc(2024, 3, 15)),  # balance 0
    (106, utc(2024, 3, 16, 8), None),  # never active: counts from enrolment, E Jun 14
    (107, utc(2024, 1, 1), utc(2024, 3, 16, 10)),  # E Jun 14, already noticed
    (108, utc(2024, 1, 1), utc(2024, 3, 18)),  # E Jun 16; noticed for Jun 12 before
    (109, utc(2024, 1, 1), utc(2024, 3, 17)),  # E Jun 15; pending points do not expire
]
EXPIRY_LEDGER_ROWS = [
    (101, 101, 120, "earned", "approved", utc(2024, 3, 19)),
    (102, 102, 80, "earned", "approved", utc(2024, 3, 20)),
    (103, 103, 30, "earned", "approved", utc(2024, 3, 13)),
    (104, 104, 50, "earned", "approved", utc(2024, 3, 12)),
    (105, 105, 20, "earned", "approved", utc(2024, 3, 1)),
    (106, 105, -20, "spent", "approved", utc(2024, 3, 15)),
    (107, 106, 10, "earned", "approved", utc(2024, 3, 16)),
    (108, 107, 60, "earned", "approved", utc(2024, 3, 16)),
    (109, 108, 70, "earned", "approved", utc(2024, 3, 18)),
    (110, 109, 40, "earned", "approved", utc(2024, 3, 17)),
    (111, 109, 100, "earned", "pending", utc(2024, 3, 17)),
]
EXPIRY_NOTICE_ROWS = [
    ("points_expiring", 107, "2024-06-14"),
    ("points_expiring", 108, "2024-06-12"),
    ("points_expiring", 101, "2024-01-01"),
]
EXPIRY_BALANCES = {101: 120, 102: 80, 103: 30, 104: 50, 105: 0, 106: 10, 107: 60, 108: 70, 109: 40}
EXPECTED_EXPIRY = {
    # customer_id: (points_to_expire, expire_points_at)
    101: (120, "2024-06-17"),
    103: (30, "2024-06-11"),
    106: (10, "2024-06-14"),
    108: (70, "2024-06-16"),
    109: (40, "2024-06-15"),
}


def frame(mapping: dict[int, int], value_column: str) -> pd.DataFrame:
    return pd.DataFrame({"customer_id": list(mapping), value_column: list(mapping.values())})


def rewards_frame() -> pd.DataFrame:
    columns = ["reward_id", "title", "kind", "cost_points", "enabled", "in_stock", "actionable"]
    return pd.DataFrame(REWARD_ROWS, columns=columns)


def _dicts(keys: tuple[str, ...], rows: list[tuple], **extra: object) -> list[dict]:
    return [dict(zip(keys, row, strict=True), **extra) for row in rows]


def _ledger_dicts(rows: list[tuple]) -> list[dict]:
    return _dicts(("entry_id", "customer_id", "points", "kind", "status", "created_at"), rows)


def _notice_dicts(rows: list[tuple]) -> list[dict]:
    return _dicts(("kind", "customer_id", "period_key"), rows, sent_at=utc(2024, 1, 1))


def seed_program(conn: sa.Connection, *, enabled_at=ENABLED_AT, expiry_enabled=True) -> None:
    settings = {
        "id": 1,
        "points_expiry_enabled": expiry_enabled,
        "expiry_period_days": 90,
        "expiry_notice_days": 7,
        "reward_reminder_enabled_at": enabled_at,
    }
    conn.execute(program_settings.insert(), [settings])
    keys = ("reward_id", "title", "kind", "cost_points", "enabled", "in_stock", "actionable")
    conn.execute(rewards.insert(), _dicts(keys, REWARD_ROWS))


def seed_reminder_data(conn: sa.Connection) -> None:
    conn.execute(
        customers.insert(),
        [{"customer_id": cid, "enrolled_at": utc(2024, 1, 1)} for cid in BALANCES],
    )
    conn.execute(points_ledger.insert(), _ledger_dicts(LEDGER_ROWS))
    event_keys = ("event_id", "topic", "customer_id", "occurred_at", "state")
    conn.execute(loyalty_events.insert(), _dicts(event_keys, EVENT_ROWS))
    conn.execute(notices_sent.insert(), _notice_dicts(REMINDER_NOTICE_ROWS))
    sent = [
        {"kind": "reward_available", "customer_id": cid, "period_key": event_id}
        | {"event_id": event_id, "sent_at": utc(2024, 3, 1)}
        for event_id, cid in SENT_EVENTS
    ]
    conn.execute(notices_sent.insert(), sent)


def seed_expiry_data(conn: sa.Connection) -> None:
    keys = ("customer_id", "enrolled_at", "last_activity_at")
    conn.execute(customers.insert(), _dicts(keys, EXPIRY_CUSTOMER_ROWS))
    conn.execute(points_ledger.insert(), _ledger_dicts(EXPIRY_LEDGER_ROWS))
    conn.execute(notices_sent.insert(), _notice_dicts(EXPIRY_NOTICE_ROWS))


def record_sent(conn: sa.Connection, kind: str, keys: list[tuple[int, str]]) -> None:
    conn.execute(notices_sent.insert(), _notice_dicts([(kind, cid, key) for cid, key in keys]))
