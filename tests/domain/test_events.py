"""Custom events: Attentive's character rules, the event user, and the exact v1 wire shape."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.contract import errors

from attentive_sync.domain.errors import NO_IDENTIFIER, RecordRejected
from attentive_sync.domain.events import (
    PROPERTY_KEY_FORBIDDEN_CHARS,
    TYPE_FORBIDDEN_CHARS,
    CustomEvent,
    EventIdentifier,
    EventUser,
    check_event_type,
    check_property_keys,
)
from attentive_sync.domain.identifiers import CustomIdentifier, Identifiers

WHEN = datetime(2024, 5, 1, 14, 38, 29, tzinfo=timezone.utc)
PHONE_USER = EventUser(phone="+14155552671")

# Lone surrogates are left out: they are not text JSON can carry, whatever Attentive's rules.
type_safe_text = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters=TYPE_FORBIDDEN_CHARS)
)
key_safe_text = st.text(
    alphabet=st.characters(
        blacklist_categories=["Cs"], blacklist_characters=PROPERTY_KEY_FORBIDDEN_CHARS
    )
)


def _event(**overrides: object) -> CustomEvent:
    fields: dict[str, object] = {
        "type": "Loyalty Tier Upgraded",
        "user": PHONE_USER,
        "properties": {"new_tier": "Gold"},
        "external_event_id": "ev-1",
        "occurred_at": WHEN,
    }
    return CustomEvent(**(fields | overrides))


@given(type_safe_text, st.sampled_from(sorted(TYPE_FORBIDDEN_CHARS)), type_safe_text)
def test_type_with_any_forbidden_char_is_rejected(head: str, bad: str, tail: str) -> None:
    with pytest.raises(ValueError, match="must not contain"):
        check_event_type(head + bad + tail)
    with pytest.raises(ValueError):
        _event(type=head + bad + tail)


@given(type_safe_text.filter(str.strip))
def test_type_without_forbidden_chars_is_accepted(name: str) -> None:
    assert check_event_type(name) == name
    assert _event(type=name).to_wire()["type"] == name


@pytest.mark.parametrize("blank", ["", "   ", "\t"])
def test_blank_type_is_rejected(blank: str) -> None:
    with pytest.raises(ValueError, match="must not be empty"):
        _event(type=blank)


@given(key_safe_text, st.sampled_from(sorted(PROPERTY_KEY_FORBIDDEN_CHARS)), key_safe_text)
def test_property_key_with_forbidden_char_is_rejected(head: str, bad: str, tail: str) -> None:
    with pytest.raises(ValueError, match="must not contain"):
        _event(properties={head + bad + tail: 1})


@given(key_safe_text.filter(bool))
def test_property_key_without_forbidden_chars_is_accepted(key: str) -> None:
    assert _event(properties={key: "x"}).to_wire()["properties"] == {key: "x"}


def test_nested_property_keys_are_checked_too() -> None:
    with pytest.raises(ValueError, match=r"properties\.available_rewards key 'a\|b'"):
        check_property_keys({"available_rewards": [{"title": "ok"}, {"a|b": 1}]})
    check_property_keys({"Order Id": "1", "ship (fedex)": {"it's": [1, 2]}})


def test_wire_shape_is_the_v1_contract() -> None:
    user = EventUser(
        phone="+14155552671",
        email="jane@example.com",
        client_user_id="c-42",
        custom=(EventIdentifier(name="shopifyId", value="99"),),
    )
    moment = datetime(2021, 3, 30, 10, 38, 29, 123456, tzinfo=timezone(timedelta(hours=-4)))
    wire = _event(user=user, properties={"n": 1, "when": WHEN}, occurred_at=moment).to_wire()
    assert wire == {
        "type": "Loyalty Tier Upgraded",
        "user": {
            "phone": "+14155552671",
            "email": "jane@example.com",
            "externalIdentifiers": {
                "clientUserId": "c-42",
                "customIdentifiers": [{"name": "shopifyId", "value": "99"}],
            },
        },
        "properties": {"n": 1, "when": "2024-05-01T14:38:29Z"},
        "externalEventId": "ev-1",
        "occurredAt": "2021-03-30T14:38:29.123Z",
    }
    json.dumps(wire)


def test_wire_omits_empty_fields() -> None:
    wire = _event(properties={}).to_wire()
    assert wire == {
        "type": "Loyalty Tier Upgraded",
        "user": {"phone": "+14155552671"},
        "externalEventId": "ev-1",
        "occurredAt": "2024-05-01T14:38:29.000Z",
    }


def test_wire_validates_against_the_openapi_schema() -> None:
    user = EventUser.from_identifiers(
        Identifiers(email="jane@example.com", shopify_id="1", klaviyo_id="k")
    )
    assert errors("v1", "CustomEventsRequest", _event(user=user).to_wire()) == []
    bad_user = _event().to_wire() | {"user": {"shopifyId": "1"}}
    assert errors("v1", "CustomEventsRequest", bad_user) != []


def test_from_identifiers_moves_shopify_and_klaviyo_to_custom_identifiers() -> None:
    ids = Identifiers(
        client_user_id="c-1",
        shopify_id="s-1",
        klaviyo_id="k-1",
        custom=(CustomIdentifier(key="loyaltyId", value="L1"),),
    )
    assert EventUser.from_identifiers(ids).to_wire() == {
        "externalIdentifiers": {
            "clientUserId": "c-1",
            "customIdentifiers": [
                {"name": "loyaltyId", "value": "L1"},
                {"name": "shopifyId", "value": "s-1"},
                {"name": "klaviyoId", "value": "k-1"},
            ],
        }
    }


def test_from_identifiers_with_nothing_usable_is_rejected() -> None:
    with pytest.raises(RecordRejected) as caught:
        EventUser.from_identifiers(Identifiers())
    assert caught.value.code == NO_IDENTIFIER


@pytest.mark.parametrize("phone", ["4155552671", "+1 415 555 2671", "+1415555267x", "phone"])
def test_user_phone_must_be_e164(phone: str) -> None:
    with pytest.raises(ValueError, match="E.164"):
        EventUser(phone=phone)


def test_event_needs_a_user_with_an_identifier() -> None:
    with pytest.raises(ValueError, match="user needs"):
        _event(user=EventUser())


def test_naive_occurred_at_is_rejected() -> None:
    with pytest.raises(ValueError, match="timezone offset"):
        _event(occurred_at=datetime(2024, 5, 1, 12, 0))


def test_external_event_id_is_required() -> None:
    with pytest.raises(ValueError, match="external_event_id"):
        _event(external_event_id="")


def test_event_is_frozen() -> None:
    event = _event()
    with pytest.raises(ValueError):
        event.type = "Other"  # type: ignore[misc]
