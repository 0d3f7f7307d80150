"""Typed properties for each loyalty event key, validated from the webhook payload.

A payload that does not fit its key can never become a useful journey trigger, so it is
refused with one message that names every missing and invalid field (never a value: payloads
can hold personal data). Fields beyond the documented ones are ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, timezone
from types import MappingProxyType
from typing import Any, ClassVar

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from attentive_sync.domain.loyalty.catalogue import EventKey
from attentive_sync.domain.loyalty.rewards import (
    AvailableReward,
    Name,
    Points,
    PositivePoints,
    flatten_available_rewards,
    listable_rewards,
)

NO_SUPPORTED_REWARDS = "no_supported_rewards"
FIRST_TIER_ON_ENROLMENT = "first_tier_on_enrolment"


class LoyaltyProperties(BaseModel):
    """Base of every per-key properties model."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    def skip_reason(self) -> str | None:
        """Why the contract says this event triggers nothing, or None to send it."""
        return None

    def to_properties(self) -> dict[str, Any]:
        """The Attentive ``properties`` object: JSON values, unknowns omitted."""
        return self.model_dump(mode="json", exclude_none=True)


class TierChanged(LoyaltyProperties):
    previous_tier: Name | None = None
    new_tier: Name

    @model_validator(mode="after")
    def _moved(self) -> TierChanged:
        if self.previous_tier is not None and self.previous_tier == self.new_tier:
            raise ValueError("new_tier must differ from previous_tier")
        return self


class TierMove(TierChanged):
    """An upgrade or downgrade, with the points bounds of the new tier (top tier: no upper)."""

    tier_lower_bound: Points
    tier_upper_bound: Points | None = None

    @model_validator(mode="after")
    def _bounds(self) -> TierMove:
        if self.tier_upper_bound is not None and self.tier_upper_bound <= self.tier_lower_bound:
            raise ValueError("tier_upper_bound must be above tier_lower_bound")
        return self


class TierUpgraded(TierMove):
    """Without a previous tier this is the enrolment into a first tier: not an upgrade."""

    def skip_reason(self) -> str | None:
        return FIRST_TIER_ON_ENROLMENT if self.previous_tier is None else None


class TierDowngraded(TierMove):
    previous_tier: Name


class RewardsProperties(LoyaltyProperties):
    """Events carrying ``available_rewards``: listed as the rule says, plus flat scalars."""

    available_rewards: tuple[AvailableReward, ...]
    points_balance: int
    # True when the platform already listed only affordable rewards (LoyaltyLion does):
    # the balance is then not applied again. Never sent to Attentive.
    rewards_prefiltered: bool = Field(False, exclude=True)

    def listed(self) -> tuple[AvailableReward, ...]:
        balance = None if self.rewards_prefiltered else self.points_balance
        return listable_rewards(self.available_rewards, balance)

    def skip_reason(self) -> str | None:
        return None if self.listed() else NO_SUPPORTED_REWARDS

    def to_properties(self) -> dict[str, Any]:
        listed = self.listed()
        properties = super().to_properties()
        properties["available_rewards"] = [r.model_dump(mode="json") for r in listed]
        return properties | flatten_available_rewards(listed)


class RewardAvailable(RewardsProperties):
    pass


class RewardReminder(RewardsProperties):
    points_approved_in_interval: Points
    points_interval_start_date: date


class ReferralComplete(LoyaltyProperties):
    referred_customer: Name
    points_awarded: Points


class ActivityCompleted(LoyaltyProperties):
    rule_name: Name
    points_awarded: Points


class ApproachingTier(LoyaltyProperties):
    """``points_required`` for points-based tiers, ``spend_required`` for spend-based ones."""

    current_tier: Name
    next_tier: Name
    points_required: PositivePoints | None = None
    spend_required: float | None = Field(None, gt=0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _required(self) -> ApproachingTier:
        if self.points_required is None and self.spend_required is None:
            raise ValueError("points_required or spend_required is required")
        return self


def _segment_words(value: str) -> str:
    """``At-Risk``, ``at_risk`` and ``At Risk`` name the same insights segment."""
    return " ".join(value.replace("-", " ").replace("_", " ").casefold().split())


class SegmentMove(LoyaltyProperties):
    """A move into one insights segment; the payload must agree with its key."""

    segment: ClassVar[str]
    previous_segment: Name | None = None
    new_segment: Name

    @model_validator(mode="after")
    def _matches_key(self) -> SegmentMove:
        if _segment_words(self.new_segment) != _segment_words(self.segment):
            raise ValueError(f"new_segment must be {self.segment!r} for this event")
        return self


class MovedToLoyal(SegmentMove):
    segment = "Loyal"


class MovedToAtRisk(SegmentMove):
    segment = "At Risk"


class MovedToWinBack(SegmentMove):
    segment = "Win Back"


class RewardClaimed(LoyaltyProperties):
    reward_title: Name
    reward_type: Name
    points_spent: Points | None = None  # LoyaltyLion's claimed_reward does not carry it
    voucher_code: Name | None = None


class PointsExpiring(LoyaltyProperties):
    points_to_expire: PositivePoints
    expire_points_at: AwareDatetime
    notice_days: Points

    @field_validator("expire_points_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value.astimezone(timezone.utc)


PROPERTIES_MODELS: Mapping[EventKey, type[LoyaltyProperties]] = MappingProxyType(
    {
        EventKey.TIER_CHANGED: TierChanged,
        EventKey.TIER_UPGRADED: TierUpgraded,
        EventKey.TIER_DOWNGRADED: TierDowngraded,
        EventKey.REWARD_AVAILABLE: RewardAvailable,
        EventKey.REFERRAL_COMPLETE: ReferralComplete,
        EventKey.ACTIVITY_COMPLETED: ActivityCompleted,
        EventKey.APPROACHING_TIER: ApproachingTier,
        EventKey.MOVED_TO_LOYAL: MovedToLoyal,
        EventKey.MOVED_TO_AT_RISK: MovedToAtRisk,
        EventKey.MOVED_TO_WIN_BACK: MovedToWinBack,
        EventKey.REWARD_CLAIMED: RewardClaimed,
        EventKey.POINTS_EXPIRING: PointsExpiring,
        EventKey.REWARD_REMINDER: RewardReminder,
    }
)


class InvalidPayload(ValueError):
    """A payload that does not fit its key; the message lists every problem, no values."""

    def __init__(self, key: EventKey, missing: tuple[str, ...], invalid: tuple[str, ...]) -> None:
        parts = [f"missing {', '.join(missing)}"] if missing else []
        parts += [f"invalid {', '.join(invalid)}"] if invalid else []
        super().__init__(f"{key.value} payload: {'; '.join(parts)}")
        self.key = key
        self.missing = missing
        self.invalid = invalid


def _where(loc: tuple[int | str, ...]) -> str:
    text = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc)
    return text.lstrip(".") or "payload"


def _reason(message: str) -> str:
    return message.removeprefix("Value error, ")


def parse_properties(key: EventKey, payload: object) -> LoyaltyProperties:
    """Validate ``payload`` against the model for ``key``; raise InvalidPayload if it fails."""
    if not isinstance(payload, Mapping):
        raise InvalidPayload(key, (), ("payload (must be an object)",))
    try:
        return PROPERTIES_MODELS[key].model_validate(dict(payload))
    except ValidationError as exc:
        errors = exc.errors(include_input=False, include_url=False)
        missing = tuple(_where(e["loc"]) for e in errors if e["type"] == "missing")
        invalid = tuple(
            f"{_where(e['loc'])} ({_reason(e['msg'])})" for e in errors if e["type"] != "missing"
        )
        raise InvalidPayload(key, missing, invalid) from exc
