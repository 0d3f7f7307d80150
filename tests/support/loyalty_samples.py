"""Sample payloads for each of the thirteen loyalty event keys, and what they become."""

from __future__ import annotations

from typing import Any

from attentive_sync.domain.loyalty.catalogue import EventKey

REWARDS = [
    {"reward_id": 11, "title": "$5 off", "kind": "voucher", "cost_points": 500},
    {"reward_id": 12, "title": "Free shipping", "kind": "free_shipping", "cost_points": 250},
    {"reward_id": 13, "title": "Any item", "kind": "free_product_voucher", "cost_points": 100},
]
TIER_MOVE = {
    "previous_tier": "Silver",
    "new_tier": "Gold",
    "tier_lower_bound": 1000,
    "tier_upper_bound": 5000,
}

SAMPLES: dict[EventKey, dict[str, Any]] = {
    EventKey.TIER_CHANGED: {"previous_tier": "Silver", "new_tier": "Gold"},
    EventKey.TIER_UPGRADED: TIER_MOVE,
    EventKey.TIER_DOWNGRADED: TIER_MOVE | {"previous_tier": "Platinum", "tier_upper_bound": None},
    EventKey.REWARD_AVAILABLE: {"available_rewards": REWARDS, "points_balance": 620},
    EventKey.REFERRAL_COMPLETE: {"referred_customer": "Sam", "points_awarded": 200},
    EventKey.ACTIVITY_COMPLETED: {"rule_name": "Follow on Instagram", "points_awarded": 50},
    EventKey.APPROACHING_TIER: {
        "current_tier": "Silver",
        "next_tier": "Gold",
        "points_required": 80,
    },
    EventKey.MOVED_TO_LOYAL: {"previous_segment": "Promising", "new_segment": "Loyal"},
    EventKey.MOVED_TO_AT_RISK: {"previous_segment": "Loyal", "new_segment": "At Risk"},
    EventKey.MOVED_TO_WIN_BACK: {"previous_segment": "At Risk", "new_segment": "Win Back"},
    EventKey.REWARD_CLAIMED: {
        "reward_title": "$5 off",
        "reward_type": "voucher",
        "points_spent": 500,
        "voucher_code": "LION-5OFF",
    },
    EventKey.POINTS_EXPIRING: {
        "points_to_expire": 300,
        "expire_points_at": "2024-05-15T00:00:00Z",
        "notice_days": 14,
    },
    EventKey.REWARD_REMINDER: {
        "available_rewards": REWARDS,
        "points_balance": 620,
        "points_approved_in_interval": 90,
        "points_interval_start_date": "2024-04-01",
    },
}
FLAT = {
    "available_rewards_count": 2,
    "cheapest_reward_title": "Free shipping",
    "cheapest_reward_cost": 250,
}
LISTED = [
    {"reward_id": "11", "title": "$5 off", "kind": "voucher", "cost_points": 500},
    {"reward_id": "12", "title": "Free shipping", "kind": "free_shipping", "cost_points": 250},
]
EXPECTED_PROPERTIES: dict[EventKey, dict[str, Any]] = {
    EventKey.TIER_DOWNGRADED: {
        "previous_tier": "Platinum",
        "new_tier": "Gold",
        "tier_lower_bound": 1000,
    },
    EventKey.REWARD_AVAILABLE: {"available_rewards": LISTED, "points_balance": 620} | FLAT,
    EventKey.REWARD_REMINDER: SAMPLES[EventKey.REWARD_REMINDER]
    | {"available_rewards": LISTED}
    | FLAT,
}
