"""One call per notice kind: read the inputs from the database and compute what to send.

These are what the Prefect tasks call. They only read: claiming a notice in
``notices_sent`` is the sender's step (the store's unique key is the lock), so computing
twice, or on two workers, is harmless.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Connection

from attentive_sync.engine.notices import queries
from attentive_sync.engine.notices.expiry import (
    ExpiryResult,
    compute_expiry_notices,
    expiry_disabled,
)
from attentive_sync.engine.notices.intervals import boundary, last_completed_interval
from attentive_sync.engine.notices.reminder import (
    ReminderCounts,
    ReminderResult,
    compute_reward_reminders,
    empty_reminders,
)


def plan_reward_reminders(
    conn: Connection, as_of: datetime, state: Connection | None = None
) -> ReminderResult:
    """Reminders for the last interval completed at ``as_of``.

    ``conn`` reads the loyalty data, ``state`` the engine's own tables (events relayed,
    notices sent); they are one connection when both live in one database.
    """
    enabled_at = queries.load_program_settings(conn).reward_reminder_enabled_at
    if enabled_at is None:
        return _no_reminders("the reward reminder is not enabled")
    interval = last_completed_interval(enabled_at, as_of)
    if interval is None:
        first_end = boundary(enabled_at, 1).isoformat()
        return _no_reminders(f"the first reminder interval ends at {first_end}")
    return compute_reward_reminders(
        queries.load_balances(conn),
        queries.load_points_approved(conn, interval),
        queries.load_rewards(conn),
        queries.load_reminder_notified_ids(state or conn, interval),
        interval,
    )


def _no_reminders(reason: str) -> ReminderResult:
    return ReminderResult(None, empty_reminders(), ReminderCounts(), reason)


def plan_expiry_notices(
    conn: Connection, as_of: date, state: Connection | None = None
) -> ExpiryResult:
    """Expiry notices due on ``as_of`` (a UTC day); ``state`` as for the reminders."""
    settings = queries.load_program_settings(conn).expiry
    if not settings.points_expiry_enabled:
        return expiry_disabled(as_of)
    return compute_expiry_notices(
        queries.load_expiry_candidates(conn, settings, as_of),
        settings,
        as_of,
        queries.load_expiry_notice_keys(state or conn, as_of),
    )
