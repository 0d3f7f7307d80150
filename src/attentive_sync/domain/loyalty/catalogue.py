"""The loyalty event catalogue: the thirteen keys, their Attentive type names, the envelope.

Per-key properties live in ``loyalty_properties``, All/Some selection and the stale rule in
``loyalty_selection``, the profile attributes kept current in ``loyalty_attributes``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import Enum
from types import MappingProxyType
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator

from attentive_sync.domain.events import check_event_type


class EventKey(str, Enum):
    """Stable keys, used in configuration ("All" or "Some: [keys]") and as webhook topics."""

    TIER_CHANGED = "tier_changed"
    TIER_UPGRADED = "tier_upgraded"
    TIER_DOWNGRADED = "tier_downgraded"
    REWARD_AVAILABLE = "reward_available"
    REFERRAL_COMPLETE = "referral_complete"
    ACTIVITY_COMPLETED = "activity_completed"
    APPROACHING_TIER = "approaching_tier"
    MOVED_TO_LOYAL = "moved_to_loyal"
    MOVED_TO_AT_RISK = "moved_to_at_risk"
    MOVED_TO_WIN_BACK = "moved_to_win_back"
    REWARD_CLAIMED = "reward_claimed"
    POINTS_EXPIRING = "points_expiring"
    REWARD_REMINDER = "reward_reminder"


EVENT_KEYS: frozenset[str] = frozenset(k.value for k in EventKey)


class WebhookEnvelope(BaseModel):
    """What the loyalty platform posts: one event, identified by its source id."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str = Field(min_length=1, max_length=200)
    topic: EventKey
    created_at: datetime
    customer_id: StrictInt = Field(ge=1, le=2**63 - 1)
    payload: dict[str, Any] = Field(default_factory=dict)

    @field_validator("created_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("created_at must carry a timezone offset (RFC 3339)")
        return value


DEFAULT_PROGRAM = "Loyalty"

# Kept for journeys built on it; "all" leaves it out (upgraded/downgraded replace it).
DEPRECATED_KEYS: frozenset[EventKey] = frozenset({EventKey.TIER_CHANGED})

# The Attentive event type is "{program} {name}". These names are journey triggers in
# Attentive and cannot change without breaking journeys built on them: never edit one.
TYPE_NAMES: Mapping[EventKey, str] = MappingProxyType(
    {
        EventKey.TIER_CHANGED: "Tier Changed",
        EventKey.TIER_UPGRADED: "Tier Upgraded",
        EventKey.TIER_DOWNGRADED: "Tier Downgraded",
        EventKey.REWARD_AVAILABLE: "Reward Available",
        EventKey.REFERRAL_COMPLETE: "Referral Complete",
        EventKey.ACTIVITY_COMPLETED: "Activity Completed",
        EventKey.APPROACHING_TIER: "Approaching Tier",
        EventKey.MOVED_TO_LOYAL: "Moved To Loyal",
        EventKey.MOVED_TO_AT_RISK: "Moved To At Risk",
        EventKey.MOVED_TO_WIN_BACK: "Moved To Win Back",
        EventKey.REWARD_CLAIMED: "Reward Claimed",
        EventKey.POINTS_EXPIRING: "Points Expiring Soon",
        EventKey.REWARD_REMINDER: "Reward Reminder",
    }
)


def check_program_name(name: str) -> str:
    """Return the trimmed program name, or raise ValueError if it cannot prefix an event type.

    It must hold at least one letter or digit, because profile attribute names are derived
    from it too.
    """
    program = name.strip()
    if not any(char.isalnum() for char in program):
        raise ValueError("program name must contain at least one letter or digit")
    try:
        return check_event_type(program)
    except ValueError as exc:
        raise ValueError(f"program name: {exc}") from exc


def event_type(key: EventKey, program: str = DEFAULT_PROGRAM) -> str:
    """The Attentive custom-event type for ``key``, e.g. ``Loyalty Tier Upgraded``."""
    return f"{check_program_name(program)} {TYPE_NAMES[key]}"


# Program customer ids at or above this are never looked up as customers: they name a
# loyalty platform's customer with no program row, whose identifiers travel in the event's
# payload under ``RECIPIENT_KEY`` (Attentive identifier name -> value).
UNMATCHED_BASE = 2**62
RECIPIENT_KEY = "recipient_identifiers"
