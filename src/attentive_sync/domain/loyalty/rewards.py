"""Rewards in loyalty events: which ones may be listed, and the flat scalars SMS can use.

Also the payload field types the per-key models share, so both modules validate names and
points the same way.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

# Rewards the messages cannot present: never listed, and alone they trigger nothing.
UNSUPPORTED_REWARD_KINDS = frozenset(
    {"point_slider", "free_product_voucher", "seamless_free_product"}
)


def _id_text(value: object) -> object:
    """Reward ids arrive as numbers or strings; Attentive properties carry them as text."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
Points = Annotated[int, Field(ge=0)]
PositivePoints = Annotated[int, Field(gt=0)]


class AvailableReward(BaseModel):
    """A reward the customer can redeem now."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    reward_id: Annotated[Name, BeforeValidator(_id_text)]
    title: Name
    kind: Name
    cost_points: Points


def listable_rewards(
    rewards: Iterable[AvailableReward], points_balance: int | None = None
) -> tuple[AvailableReward, ...]:
    """Supported kinds only and, given a balance, only the affordable ones."""
    return tuple(
        reward
        for reward in rewards
        if reward.kind not in UNSUPPORTED_REWARD_KINDS
        and (points_balance is None or reward.cost_points <= points_balance)
    )


def flatten_available_rewards(rewards: Iterable[AvailableReward]) -> dict[str, int | str]:
    """Scalars SMS can use, since lists only work in email journeys.

    The cheapest reward is chosen by cost, then title, then id, so equal costs give the same
    answer on every run. With nothing listable only the count (0) is emitted.
    """
    listed = listable_rewards(rewards)
    flat: dict[str, int | str] = {"available_rewards_count": len(listed)}
    if listed:
        cheapest = min(listed, key=lambda r: (r.cost_points, r.title, r.reward_id))
        flat["cheapest_reward_title"] = cheapest.title
        flat["cheapest_reward_cost"] = cheapest.cost_points
    return flat
