"""The pure rules of derived events, case by case."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from attentive_sync.domain.loyalty.selection import EventSelection
from attentive_sync.engine.derived.queries import Tier
from attentive_sync.engine.derived.rules import Derived, Program, derive_state_events, segment_name

NOW = datetime(2026, 12, 1, tzinfo=timezone.utc)
TIERS = {
    "Bronze": Tier("Bronze", 1, 0, 499),
    "Silver": Tier("Silver", 2, 500, 1499),
    "Gold": Tier("Gold", 3, 1500, None),
}
REWARDS = [
    {"reward_id": 1, "title": "$5 off", "kind": "discount_voucher", "cost_points": 100},
    {"reward_id": 2, "title": "$15 off", "kind": "discount_voucher", "cost_points": 250},
]
PROGRAM = Program(TIERS, REWARDS, 100, EventSelection(include_deprecated=True))


def change(**values: object) -> dict[str, object]:
    base = {
        "customer_id": 7,
        "tier": "Bronze",
        "insights_segment": "active",
        "points_balance": 0,
        "known": True,
        "old_tier": "Bronze",
        "old_segment": "active",
        "old_balance": 0,
        "reward_available_at": None,
        "approaching_tier_at": None,
    }
    return base | values


def topics(**values: object) -> list[str]:
    out = Derived()
    derive_state_events(change(**values), PROGRAM, 3, NOW, out)
    return [e.topic for e in out.events]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"old_tier": None, "tier": "Silver"}, []),  # a first tier is no upgrade
        ({"old_tier": "Silver", "tier": None}, []),  # nor is losing the tier
        ({"old_tier": "Bronze", "tier": "Gold"}, ["tier_changed", "tier_upgraded"]),
        ({"old_tier": "Gold", "tier": "Silver"}, ["tier_changed", "tier_downgraded"]),
        ({"old_tier": "Gold", "tier": "Platinum"}, ["tier_changed"]),  # position unknown
        ({"insights_segment": "at_risk"}, ["moved_to_at_risk"]),
        ({"insights_segment": "promising"}, []),
        ({"old_segment": "At Risk", "insights_segment": "at_risk"}, []),  # same segment
        ({"points_balance": 99}, []),
        ({"points_balance": 100}, ["reward_available"]),
        ({"old_balance": 120, "points_balance": 200}, []),  # no new reward within reach
        ({"old_balance": 120, "points_balance": 250}, ["reward_available"]),
        ({"points_balance": 400, "old_balance": 300}, ["approaching_tier"]),
        ({"points_balance": 410, "old_balance": 400}, []),  # within the threshold already
        ({"points_balance": 500, "old_balance": 300}, []),  # reached it: no longer approaching
        ({"tier": "Gold", "old_tier": "Gold", "points_balance": 90}, []),  # no next tier
    ],
)
def test_state_changes_and_their_events(values, expected):
    assert topics(**values) == expected


def test_cooldowns_hold_repeats_for_seven_days():
    recent = NOW - timedelta(days=6, hours=23)
    held = Derived()
    derive_state_events(
        change(
            points_balance=420,
            old_balance=0,
            reward_available_at=recent,
            approaching_tier_at=recent,
        ),
        PROGRAM,
        3,
        NOW,
        held,
    )
    assert held.events == [] and held.counts == {"cooldown_suppressed": 2}
    week = NOW - timedelta(days=7)
    sent = Derived()
    derive_state_events(
        change(
            points_balance=420, old_balance=0, reward_available_at=week, approaching_tier_at=week
        ),
        PROGRAM,
        3,
        NOW,
        sent,
    )
    assert [e.topic for e in sent.events] == ["reward_available", "approaching_tier"]
    assert sent.reward_available_at == {7: NOW} and sent.approaching_tier_at == {7: NOW}
    assert [e.event_id for e in sent.events] == [
        "derived:reward_available:7:g3",
        "derived:approaching_tier:7:g3",
    ]


@pytest.mark.parametrize(
    ("raw", "name"),
    [
        ("at_risk", "At Risk"),
        ("At-Risk", "At Risk"),
        ("win_back", "Win Back"),
        ("active", "Active"),
        ("VIP Plus", "VIP Plus"),
        ("  ", None),
        (None, None),
    ],
)
def test_segment_names(raw, name):
    assert segment_name(raw) == name
