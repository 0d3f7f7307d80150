"""LoyaltyLion deliveries for tests: the published fixtures, and deliveries built from the
documented field rules for the topics the fixtures do not cover."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from attentive_sync.intake.loyaltylion import SIGNATURE_HEADER, signature

SECRET = SecretStr("lion-site-secret")
FIXTURES = Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures" / "loyaltylion"

CUSTOMER: dict[str, Any] = {
    "id": 6932,
    "merchant_id": "2134606599",
    "email": "jessica@example.com",
    "points_approved": 200,
    "points_pending": 300,
    "points_spent": 500,
    "rewards_claimed": 5,
    "properties": {"name": "Jessica White"},
    "metadata": {},
    "birthday": "1990-01-29",
    "blocked": False,
    "guest": False,
    "enrolled": True,
    "enrolled_at": "2015-12-10T03:00:00.000Z",
    "referral_id": "a4e",
    "referred_by": None,
    "loyalty_tier_membership": None,
    "insights_segment": "Loyal",
    "referral_url": "https://prz.io/KzByQ2Fa",
    "created_at": "2016-12-10T03:00:00.000Z",
    "updated_at": "2018-01-01T03:00:00.000Z",
}


def tier(name: str, number: int, lower: str, upper: str | None) -> dict[str, Any]:
    return {
        "id": 10 + number,
        "name": name,
        "number": number,
        "default": number == 1,
        "hidden": False,
        "lower_bound": lower,
        "upper_bound": upper,
    }


def delivery(
    topic: str,
    fields: dict[str, Any],
    *,
    wrapper: str = "properties",
    event_id: str = "bff1bddb-6cd8-4c2c-9619-18744657053c",
    sent_at: str = "2025-06-01T12:05:00.000Z",
    happened_at: str = "2025-06-01T12:00:00.000Z",
) -> dict[str, Any]:
    """An envelope around ``fields`` in one of LoyaltyLion's three payload wrappers."""
    if wrapper == "full":
        payload: dict[str, Any] = {
            "id": "332d90cd-1ba1-4a7b-abd1-79e643b4b89f",
            "created_at": happened_at,
            "kind": topic,
            "unique_until": None,
            "properties": fields,
        }
    elif wrapper == "properties":
        payload = {"properties": fields}
    else:
        payload = dict(fields)
    return {
        "id": event_id,
        "topic": f"program_events/{topic}",
        "created_at": sent_at,
        "payload": payload,
    }


def customer(**changes: Any) -> dict[str, Any]:
    return copy.deepcopy(CUSTOMER) | changes


# Topics without a fixture, built from LoyaltyLion's documented payload fields.
BUILT: dict[str, dict[str, Any]] = {
    "customer.tier_upgraded": delivery(
        "customer.tier_upgraded",
        {
            "customer": customer(),
            "previous_tier": tier("Silver", 2, "200.01", "400.00"),
            "new_tier": tier("Gold", 3, "400.01", None),
        },
        wrapper="full",
    ),
    "customer.tier_downgraded": delivery(
        "customer.tier_downgraded",
        {
            "customer": customer(),
            "previous_tier": tier("Gold", 3, "400.01", None),
            "new_tier": tier("Silver", 2, "200.01", "400.00"),
        },
    ),
    "customer.approaching_tier_upgrade": delivery(
        "customer.approaching_tier_upgrade",
        {
            "customer": customer(),
            "current_tier": tier("Silver", 2, "200.01", "400.00"),
            "next_tier": tier("Gold", 3, "400.01", None),
            "points_required": 80,
            "spend_required": None,
        },
    ),
    "customer.moved_to_at_risk_segment": delivery(
        "customer.moved_to_at_risk_segment",
        {
            "customer": customer(),
            "new_insight_segment": "At risk",
            "previous_insight_segment": "Loyal",
            "frequency": 1,
            "total_spend": 4200,
            "last_order_date": "2025-01-01T00:00:00.000Z",
            "average_basket_size": 42,
        },
        wrapper="flat",
    ),
    "customer.moved_to_defected_segment": delivery(
        "customer.moved_to_defected_segment",
        {
            "customer": customer(),
            "new_insight_segment": "Defected",
            "previous_insight_segment": "At risk",
            "frequency": None,
            "total_spend": None,
            "last_order_date": None,
            "average_basket_size": None,
        },
        wrapper="flat",
    ),
    "customer.claimed_reward": delivery(
        "customer.claimed_reward",
        {
            "customer": customer(),
            "title": "$5 off",
            "reward_type": "voucher",
            "discount_type": "flat",
            "voucher_code": "LION-5OFF",
            "discount_amount": 5,
            "gift_card_last_characters": None,
            "currency": None,
            "initial_value": None,
            "balance": None,
        },
        wrapper="full",
    ),
    "customer.referral_complete": delivery(
        "customer.referral_complete",
        {
            "referring_customer": customer(),
            "referred_customer": customer(
                id=7001,
                merchant_id="99",
                email="sam@example.com",
                properties={"first_name": "Sam", "last_name": "Lee"},
            ),
            "activity": {
                "id": 1,
                "rule": {"id": 5, "name": "$referral", "title": "Refer a friend"},
                "state": "approved",
                "value": "250",
                "merchant_id": None,
                "created_at": "2025-06-01T11:00:00.000Z",
            },
            "order": {"id": 194572858, "total": "45.96"},
        },
    ),
}

# What each LoyaltyLion topic becomes: the Attentive type and its properties.
EXPECTED: dict[str, tuple[str, dict[str, Any]]] = {
    "customer.tier_upgraded": (
        "Loyalty Tier Upgraded",
        {"previous_tier": "Silver", "new_tier": "Gold", "tier_lower_bound": 40001},
    ),
    "customer.tier_downgraded": (
        "Loyalty Tier Downgraded",
        {
            "previous_tier": "Gold",
            "new_tier": "Silver",
            "tier_lower_bound": 20001,
            "tier_upper_bound": 40000,
        },
    ),
    "customer.approaching_tier_upgrade": (
        "Loyalty Approaching Tier",
        {"current_tier": "Silver", "next_tier": "Gold", "points_required": 80},
    ),
    "customer.moved_to_loyal_segment": (
        "Loyalty Moved To Loyal",
        {"previous_segment": "At Risk", "new_segment": "Loyal"},
    ),
    "customer.moved_to_at_risk_segment": (
        "Loyalty Moved To At Risk",
        {"previous_segment": "Loyal", "new_segment": "At Risk"},
    ),
    "customer.moved_to_defected_segment": (
        "Loyalty Moved To Win Back",
        {"previous_segment": "At Risk", "new_segment": "Win Back"},
    ),
    "customer.claimed_reward": (
        "Loyalty Reward Claimed",
        {"reward_title": "$5 off", "reward_type": "voucher", "voucher_code": "LION-5OFF"},
    ),
    "customer.referral_complete": (
        "Loyalty Referral Complete",
        {"referred_customer": "Sam Lee", "points_awarded": 250},
    ),
    "customer.rule_completed": (
        "Loyalty Activity Completed",
        {"rule_name": "Sign up", "points_awarded": 200},
    ),
    "customer.points_earned": (
        "Loyalty Activity Completed",
        {"rule_name": "Make a purchase", "points_awarded": 1200},
    ),
    "customer.reward_available_notification": (
        "Loyalty Reward Available",
        {
            "available_rewards": [
                {
                    "reward_id": "121013",
                    "title": "10% Off",
                    "kind": "cart_discount_voucher",
                    "cost_points": 500,
                }
            ],
            "points_balance": 200,
            "available_rewards_count": 1,
            "cheapest_reward_title": "10% Off",
            "cheapest_reward_cost": 500,
        },
    ),
    "customer.approaching_points_expiration": (
        "Loyalty Points Expiring Soon",
        {
            "points_to_expire": 136,
            "expire_points_at": "2024-01-01T03:00:05Z",
            "notice_days": 2191,  # from the event time (2018-01-01) to the expiry date
        },
    ),
}
EXPECTED["customer.recurring_reward_available_reminder"] = (
    "Loyalty Reward Reminder",
    EXPECTED["customer.reward_available_notification"][1]
    | {"points_approved_in_interval": 150, "points_interval_start_date": "2017-12-01"},
)


def fixture_deliveries() -> dict[str, dict[str, Any]]:
    """Topic (without ``program_events/``) -> the fixture's valid delivery; skips the
    calling test, saying why, when the shared fixtures are not checked out beside the repo."""
    if not FIXTURES.is_dir():
        pytest.skip(f"LoyaltyLion fixtures not found at {FIXTURES.resolve()}")
    found = {}
    for path in sorted(FIXTURES.glob("*.json")):
        data = json.loads(path.read_text())
        document = data.get("realistic_delivery") or data.get("published_example_syntax_repaired")
        if isinstance(document, dict) and "topic" in document:
            found[document["topic"].removeprefix("program_events/")] = document
    return found


def signed(document: dict[str, Any] | bytes, secret: SecretStr = SECRET) -> dict[str, Any]:
    """``client.post`` keyword arguments: the body signed the way LoyaltyLion signs it."""
    body = document if isinstance(document, bytes) else json.dumps(document).encode()
    return {
        "content": body,
        "headers": {SIGNATURE_HEADER: signature(secret, body), "content-type": "application/json"},
    }
