"""Computed loyalty notices: the monthly reward reminder and the points-expiring-soon notice.

Pure functions over pandas DataFrames (``reminder``, ``expiry``, ``intervals``), the SQL
that feeds them with the sums done in the database (``queries``), and one call per kind
that ties the two together (``plan``).
"""

from attentive_sync.engine.notices.expiry import (
    ExpiryCounts,
    ExpiryResult,
    ExpirySettings,
    compute_expiry_notices,
)
from attentive_sync.engine.notices.intervals import (
    Interval,
    interval_containing,
    last_completed_interval,
)
from attentive_sync.engine.notices.plan import plan_expiry_notices, plan_reward_reminders
from attentive_sync.engine.notices.reminder import (
    UNSUPPORTED_REWARD_KINDS,
    ReminderCounts,
    ReminderResult,
    compute_reward_reminders,
)

__all__ = [
    "UNSUPPORTED_REWARD_KINDS",
    "ExpiryCounts",
    "ExpiryResult",
    "ExpirySettings",
    "Interval",
    "ReminderCounts",
    "ReminderResult",
    "compute_expiry_notices",
    "compute_reward_reminders",
    "interval_containing",
    "last_completed_interval",
    "plan_expiry_notices",
    "plan_reward_reminders",
]
