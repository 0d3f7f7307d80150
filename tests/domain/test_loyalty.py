"""The loyalty catalogue: type names, payloads, rewards, selection, staleness, attributes."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from attentive_sync.domain.events import TYPE_FORBIDDEN_CHARS, check_event_type
from attentive_sync.domain.loyalty.attributes import (
    PROFILE_ATTRIBUTES,
    attribute_names,
    attribute_prefix,
    profile_attributes,
)
from attentive_sync.domain.loyalty.catalogue import (
    EVENT_KEYS,
    TYPE_NAMES,
    EventKey,
    WebhookEnvelope,
    check_program_name,
    event_type,
)
from attentive_sync.domain.loyalty.properties import (
    FIRST_TIER_ON_ENROLMENT,
    NO_SUPPORTED_REWARDS,
    PROPERTIES_MODELS,
    InvalidPayload,
    parse_properties,
)
from attentive_sync.domain.loyalty.rewards import (
    UNSUPPORTED_REWARD_KINDS,
    AvailableReward,
    flatten_available_rewards,
)
from attentive_sync.domain.loyalty.selection import EventSelection, StalePolicy, is_stale

DOCS = Path(__file__).resolve().parents[2] / "docs" / "EVENTS.md"
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)


def _reward(reward_id: int, title: str, kind: str, cost: int) -> dict[str, object]:
    return {"reward_id": reward_id, "title": title, "kind": kind, "cost_points": cost}


# Catalogue and type names


def test_every_key_has_a_type_name_and_a_properties_model() -> None:
    assert set(TYPE_NAMES) == set(EventKey) == set(PROPERTIES_MODELS)
    assert {key.value for key in EventKey} == EVENT_KEYS
    assert len(EVENT_KEYS) == 13
    assert len(set(TYPE_NAMES.values())) == 13


def test_type_names_are_fixed_and_prefixed_by_the_program() -> None:
    assert event_type(EventKey.TIER_UPGRADED) == "Loyalty Tier Upgraded"
    assert event_type(EventKey.MOVED_TO_AT_RISK) == "Loyalty Moved To At Risk"
    assert event_type(EventKey.POINTS_EXPIRING, "Acme Perks") == "Acme Perks Points Expiring Soon"
    assert event_type(EventKey.REWARD_REMINDER, "  VIP Club ") == "VIP Club Reward Reminder"
    for key in EventKey:
        check_event_type(event_type(key))


@given(st.text(), st.sampled_from(sorted(TYPE_FORBIDDEN_CHARS)))
def test_program_name_with_a_forbidden_char_is_rejected(name: str, bad: str) -> None:
    with pytest.raises(ValueError, match="program name"):
        check_program_name(f"Acme{bad}{name}")


@pytest.mark.parametrize("name", ["", "   ", "---"])
def test_program_name_needs_a_letter_or_digit(name: str) -> None:
    with pytest.raises(ValueError, match="letter or digit"):
        check_program_name(name)


def test_docs_list_every_type_name_and_attribute() -> None:
    text = DOCS.read_text()
    for key in EventKey:
        assert f"`{key.value}`" in text and f"`{event_type(key)}`" in text
        for field in PROPERTIES_MODELS[key].model_fields:
            assert f"`{field}`" in text
    for name in attribute_names().values():
        assert f"`{name}`" in text


def test_envelope_keeps_its_contract() -> None:
    envelope = WebhookEnvelope.model_validate(
        {
            "id": "e1",
            "topic": "tier_upgraded",
            "created_at": "2024-05-01T12:00:00Z",
            "customer_id": 7,
            "payload": {"new_tier": "Gold"},
            "extra": 1,
        }
    )
    assert envelope.topic is EventKey.TIER_UPGRADED
    with pytest.raises(ValueError, match="timezone offset"):
        WebhookEnvelope(
            id="e1", topic="tier_upgraded", created_at=datetime(2024, 5, 1), customer_id=7
        )


# Payload contracts


@pytest.mark.parametrize("key", list(EventKey))
def test_empty_payload_names_every_missing_field(key: EventKey) -> None:
    required = sorted(
        name for name, info in PROPERTIES_MODELS[key].model_fields.items() if info.is_required()
    )
    with pytest.raises(InvalidPayload) as caught:
        parse_properties(key, {})
    assert sorted(caught.value.missing) == required
    assert str(caught.value) == f"{key.value} payload: missing {', '.join(caught.value.missing)}"


def test_invalid_fields_are_listed_without_their_values() -> None:
    payload = {
        "reward_title": "Free tote",
        "reward_type": "voucher",
        "points_spent": -5,
        "voucher_code": "   ",
    }
    with pytest.raises(InvalidPayload) as caught:
        parse_properties(EventKey.REWARD_CLAIMED, payload)
    message = str(caught.value)
    assert "invalid points_spent (" in message and "voucher_code (" in message
    assert "-5" not in message and "missing" not in message


def test_nested_reward_errors_point_at_the_item() -> None:
    payload = {"points_balance": 10, "available_rewards": [_reward(1, "A", "voucher", -1)]}
    with pytest.raises(InvalidPayload, match=r"available_rewards\[0\]\.cost_points"):
        parse_properties(EventKey.REWARD_AVAILABLE, payload)


def test_non_object_payload_is_rejected() -> None:
    with pytest.raises(InvalidPayload, match="must be an object"):
        parse_properties(EventKey.TIER_CHANGED, ["Gold"])


def test_tier_moves_check_bounds_and_direction() -> None:
    base = {"previous_tier": "Silver", "new_tier": "Gold", "tier_lower_bound": 500}
    assert parse_properties(EventKey.TIER_DOWNGRADED, base).to_properties() == base
    with pytest.raises(InvalidPayload, match="tier_upper_bound must be above"):
        parse_properties(EventKey.TIER_UPGRADED, base | {"tier_upper_bound": 500})
    with pytest.raises(InvalidPayload, match="must differ"):
        parse_properties(EventKey.TIER_CHANGED, {"previous_tier": "Gold", "new_tier": "Gold"})


def test_first_tier_on_enrolment_is_not_an_upgrade() -> None:
    props = parse_properties(EventKey.TIER_UPGRADED, {"new_tier": "Bronze", "tier_lower_bound": 0})
    assert props.skip_reason() == FIRST_TIER_ON_ENROLMENT
    with pytest.raises(InvalidPayload, match="missing previous_tier"):
        parse_properties(EventKey.TIER_DOWNGRADED, {"new_tier": "Bronze", "tier_lower_bound": 0})


@pytest.mark.parametrize(
    ("key", "segment"),
    [
        (EventKey.MOVED_TO_AT_RISK, "At-Risk"),
        (EventKey.MOVED_TO_WIN_BACK, "win_back"),
        (EventKey.MOVED_TO_LOYAL, " loyal "),
    ],
)
def test_segment_spellings_match_their_key(key: EventKey, segment: str) -> None:
    props = parse_properties(key, {"previous_segment": "New", "new_segment": segment})
    assert props.to_properties()["new_segment"] == segment.strip()
    with pytest.raises(InvalidPayload, match="new_segment must be"):
        parse_properties(key, {"new_segment": "Champions"})


def test_points_expiring_needs_an_aware_expiry_and_sends_it_in_utc() -> None:
    payload = {
        "points_to_expire": 120,
        "notice_days": 14,
        "expire_points_at": "2024-05-15T02:00:00+02:00",
    }
    props = parse_properties(EventKey.POINTS_EXPIRING, payload).to_properties()
    assert props["expire_points_at"] == "2024-05-15T00:00:00Z"
    with pytest.raises(InvalidPayload, match="expire_points_at"):
        parse_properties(EventKey.POINTS_EXPIRING, payload | {"expire_points_at": "2024-05-15"})


# Rewards


def test_unsupported_and_unaffordable_rewards_are_never_listed() -> None:
    rewards = [_reward(k, k, k, 10) for k in sorted(UNSUPPORTED_REWARD_KINDS)]
    rewards += [_reward(7, "$5 off", "voucher", 500), _reward(8, "Tote", "voucher", 900)]
    payload = {"points_balance": 600, "available_rewards": rewards}
    props = parse_properties(EventKey.REWARD_AVAILABLE, payload).to_properties()
    assert props["available_rewards"] == [
        {"reward_id": "7", "title": "$5 off", "kind": "voucher", "cost_points": 500}
    ]
    assert props["available_rewards_count"] == 1


def test_only_unsupported_rewards_trigger_nothing() -> None:
    rewards = [
        _reward(1, "Slider", "point_slider", 1),
        _reward(2, "Gift", "seamless_free_product", 1),
    ]
    for key, extra in [
        (EventKey.REWARD_AVAILABLE, {}),
        (
            EventKey.REWARD_REMINDER,
            {"points_approved_in_interval": 40, "points_interval_start_date": "2024-04-01"},
        ),
    ]:
        payload = {"points_balance": 100, "available_rewards": rewards} | extra
        assert parse_properties(key, payload).skip_reason() == NO_SUPPORTED_REWARDS


def test_flat_scalars_pick_the_cheapest_deterministically() -> None:
    rewards = [
        AvailableReward.model_validate(r)
        for r in (
            _reward(3, "Tote", "voucher", 300),
            _reward(2, "Cap", "voucher", 200),
            _reward(1, "Bag", "free_shipping", 200),
            _reward(9, "Slide", "point_slider", 5),
        )
    ]
    expected = {
        "available_rewards_count": 3,
        "cheapest_reward_title": "Bag",
        "cheapest_reward_cost": 200,
    }
    assert flatten_available_rewards(rewards) == expected
    assert flatten_available_rewards(reversed(rewards)) == expected
    assert flatten_available_rewards([]) == {"available_rewards_count": 0}


@given(
    st.lists(
        st.tuples(
            st.sampled_from(
                [
                    "voucher",
                    "point_slider",
                    "free_product_voucher",
                    "gift_card",
                    "seamless_free_product",
                ]
            ),
            st.integers(0, 10_000),
        ),
        max_size=8,
    )
)
def test_flat_scalars_agree_with_the_supported_list(items: list[tuple[str, int]]) -> None:
    rewards = [
        AvailableReward(reward_id=str(i), title=f"R{i}", kind=kind, cost_points=cost)
        for i, (kind, cost) in enumerate(items)
    ]
    supported = [r for r in rewards if r.kind not in UNSUPPORTED_REWARD_KINDS]
    flat = flatten_available_rewards(rewards)
    assert flat["available_rewards_count"] == len(supported)
    if supported:
        assert flat["cheapest_reward_cost"] == min(r.cost_points for r in supported)
    else:
        assert "cheapest_reward_title" not in flat


def test_reward_reminder_carries_its_interval() -> None:
    payload = {
        "points_balance": 500,
        "points_approved_in_interval": 40,
        "points_interval_start_date": "2024-04-01",
        "available_rewards": [_reward(1, "$5 off", "voucher", 500)],
    }
    props = parse_properties(EventKey.REWARD_REMINDER, payload)
    assert props.points_interval_start_date == date(2024, 4, 1)
    assert props.to_properties()["points_interval_start_date"] == "2024-04-01"
    assert props.skip_reason() is None


# Selection and staleness


def test_all_leaves_out_the_deprecated_key_unless_asked() -> None:
    assert all(EventSelection().selects(k) for k in EventKey if k is not EventKey.TIER_CHANGED)
    assert not EventSelection().selects(EventKey.TIER_CHANGED)
    assert EventSelection(include_deprecated=True).selects(EventKey.TIER_CHANGED)


def test_some_selects_exactly_its_keys_deprecated_included() -> None:
    chosen = EventSelection(mode="some", keys=["tier_changed", EventKey.REWARD_CLAIMED])
    assert {k for k in EventKey if chosen.selects(k)} == {
        EventKey.TIER_CHANGED,
        EventKey.REWARD_CLAIMED,
    }


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"mode": "some"}, "at least one"),
        ({"mode": "all", "keys": ["tier_upgraded"]}, "only"),
        ({"mode": "some", "keys": ["tier_up"]}, "keys"),
        ({"mode": "most"}, "mode"),
    ],
)
def test_inconsistent_selection_is_refused(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        EventSelection.model_validate(fields)


def test_selection_parses_the_configuration_form() -> None:
    assert EventSelection.parse(" All ") == EventSelection()
    assert EventSelection.parse("some: reward_claimed, tier_upgraded").chosen == [
        EventKey.REWARD_CLAIMED,
        EventKey.TIER_UPGRADED,
    ]
    with pytest.raises(ValueError, match="unknown event key.*tier_up"):
        EventSelection.parse("some:tier_up")
    with pytest.raises(ValueError, match="'all' or 'some"):
        EventSelection.parse("everything")


def test_selection_round_trips_as_a_json_parameter() -> None:
    chosen = EventSelection(mode="some", keys=[EventKey.POINTS_EXPIRING])
    assert EventSelection.model_validate_json(chosen.model_dump_json()) == chosen


def test_stale_after_twelve_hours() -> None:
    assert StalePolicy("skip") is StalePolicy.SKIP
    assert not is_stale(NOW - timedelta(hours=12), NOW)
    assert is_stale(NOW - timedelta(hours=12, seconds=1), NOW)
    assert not is_stale(NOW + timedelta(hours=1), NOW)
    assert is_stale(NOW - timedelta(minutes=31), NOW, threshold=timedelta(minutes=30))
    with pytest.raises(ValueError, match="occurred_at must carry"):
        is_stale(datetime(2024, 5, 1), NOW)


# Profile attributes


def test_attribute_prefix_is_the_slugged_program_name() -> None:
    assert attribute_prefix() == "loyalty"
    assert attribute_prefix("Acme Perks & Rewards!") == "acme_perks_rewards"
    assert [a.suffix for a in PROFILE_ATTRIBUTES] == ["tier", "points_balance", "insights_segment"]


def test_profile_attributes_have_fixed_types_and_omit_unknowns() -> None:
    assert profile_attributes("Gold", 1200.0, "At Risk") == {
        "loyalty_tier": "Gold",
        "loyalty_points_balance": 1200,
        "loyalty_insights_segment": "At Risk",
    }
    assert profile_attributes(None, None, "  ", program="VIP") == {}
    assert profile_attributes(" Silver ", 0, None) == {
        "loyalty_tier": "Silver",
        "loyalty_points_balance": 0,
    }
    with pytest.raises(ValueError, match="finite"):
        profile_attributes("Gold", float("nan"), None)
    with pytest.raises(ValueError, match="must be a number"):
        profile_attributes("Gold", True, None)
    with pytest.raises(ValueError, match="tier must be text"):
        profile_attributes(3, None, None)  # type: ignore[arg-type]


@given(
    st.one_of(st.none(), st.text()),
    st.one_of(st.none(), st.integers(), st.floats(allow_nan=False, allow_infinity=False)),
    st.one_of(st.none(), st.text()),
)
def test_profile_attributes_never_emit_none_or_a_second_type(
    tier: str | None, balance: float | None, segment: str | None
) -> None:
    types = {"string": str, "number": (int, float)}
    expected = {f"loyalty_{a.suffix}": types[a.type] for a in PROFILE_ATTRIBUTES}
    for name, value in profile_attributes(tier, balance, segment).items():
        assert value is not None and isinstance(value, expected[name])
        assert not isinstance(value, bool)
