"""The loyalty event catalogue: the thirteen keys and the webhook envelope they arrive in."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator


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
    customer_id: int = Field(ge=1)
    payload: dict[str, Any] = Field(default_factory=dict)

    @field_validator("created_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("created_at must carry a timezone offset (RFC 3339)")
        return value
