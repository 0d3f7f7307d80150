"""Payload checks: the published schemas plus the rules ATTENTIVE_API.md adds."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from jsonschema import Draft4Validator

from attentive_sync.emulator import rules
from attentive_sync.emulator.contract import SchemaCheck, close_objects, registry
from attentive_sync.emulator.rules import E164
from attentive_sync.emulator.validation import (
    bulk_user_problem,
    custom_attributes_problem,
    custom_event_problem,
)

from .conftest import user

IDS = {"phone": "+15550000001"}


def with_ids(**identifiers: Any) -> dict[str, Any]:
    return {"identifiers": identifiers}


def with_attrs(**attributes: Any) -> dict[str, Any]:
    return {"identifiers": IDS, "attributes": attributes}


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        (with_ids(phone="5551234"), "E.164"),
        (with_ids(phone="+05551234567"), "E.164"),
        (with_ids(phone=None), "must not be null"),
        (with_ids(email=""), "must not be empty"),
        (with_ids(email="  "), "must not be empty"),
        (with_ids(email="not-an-email"), "email address"),
        (with_ids(clientUserId="x" * 101), "longer than 100"),
        (with_ids(), "at least 1 field"),
        (with_ids(customIdentifiers=[]), "at least one identifier"),
        (with_ids(customIdentifiers=[{"name": "a", "value": "b"}]), "'key' is a required"),
        (with_ids(customIdentifiers=[{"key": "a", "value": ""}]), "must not be empty"),
        (with_ids(phoneNumber="+15550000001"), "unknown field(s): phoneNumber"),
        ({"attributes": {"firstName": "Ada"}}, "at least one identifier"),
        (with_attrs(firstname="Ada"), "unknown field(s): firstname"),
        (with_attrs(custom={"tags": ["a", "b"]}), "string, number or boolean"),
        (with_attrs(custom={"address": {"city": "Leeds"}}), "string, number or boolean"),
        (with_attrs(custom={"gone": None}), "string, number or boolean"),
        (with_attrs(custom={"x" * 201: 1}), "1 to 200 characters"),
        (with_attrs(custom={"": 1}), "1 to 200 characters"),
        (with_attrs(demographic={"dateOfBirth": "1990-02-30"}), "YYYY-MM-DD"),
        (with_attrs(demographic={"dateOfBirth": "02/03/1990"}), "YYYY-MM-DD"),
        (with_attrs(demographic={"age": "30"}), "must be of type integer"),
        ("a string", "body must be of type object"),
    ],
)
def test_bad_bulk_users_are_named_clearly(item: Any, expected: str) -> None:
    problem = bulk_user_problem(item)
    assert problem is not None and expected in problem


@pytest.mark.parametrize(
    "item",
    [
        user(),
        with_ids(email="ada@example.com"),
        with_ids(klaviyoId="k1", shopifyId="s1"),
        with_ids(customIdentifiers=[{"key": "loyaltyId", "value": "L-1"}]),
        with_attrs(
            firstName="Ada",
            demographic={"dateOfBirth": "1990-02-28", "age": 35},
            location={"city": "Leeds", "country": "GB"},
            locale={"language": "en", "country": "GB"},
            custom={"vip": True, "points": 1.5, "tier": "gold", "x" * 200: 0},
        ),
    ],
)
def test_good_bulk_users_pass(item: Any) -> None:
    assert bulk_user_problem(item) is None


@given(st.from_regex(E164, fullmatch=True))
def test_every_e164_number_is_accepted(phone: str) -> None:
    assert bulk_user_problem(with_ids(phone=phone)) is None


@given(st.text(max_size=20).filter(lambda s: not E164.match(s) and s.strip()))
def test_every_non_e164_phone_is_refused_without_echoing_it(phone: str) -> None:
    problem = bulk_user_problem(with_ids(phone=phone))
    assert problem is not None and "E.164" in problem


EVENT = {"type": "Tier Upgraded", "user": {"email": "ada@example.com"}}


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"type": "Tier (new)"}, "must not contain"),
        ({"type": "a,b"}, "must not contain"),
        ({"type": ""}, "must not be empty"),
        ({"type": None}, "type must not be null"),
        ({"user": {}}, "at least 1 field"),
        ({"user": {"clientUserId": "c1"}}, "unknown field(s): clientUserId"),
        ({"user": {"externalIdentifiers": {}}}, "needs a phone, an email"),
        ({"user": {"externalIdentifiers": {"customIdentifiers": [{"name": "a"}]}}}, "value is"),
        ({"user": {"phone": "5551234"}}, "E.164"),
        ({"properties": {"a|b": 1}}, "keys must not contain"),
        ({"properties": {"ok": {"nested[0]": 1}}}, "keys must not contain"),
        ({"occurredAt": "2024-01-01T10:00:00"}, "RFC 3339"),
        ({"occurredAt": "2024-02-30T10:00:00Z"}, "not a real date"),
        ({"externalEventId": 7}, "must be of type string"),
        ({"extra": 1}, "unknown field(s): extra"),
    ],
)
def test_bad_custom_events_are_named_clearly(changes: dict[str, Any], expected: str) -> None:
    problem = custom_event_problem({**EVENT, **changes})
    assert problem is not None and expected in problem


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"user": {"phone": "+15550000001"}},
        {"user": {"externalIdentifiers": {"clientUserId": "c1"}}},
        {"user": {"externalIdentifiers": {"customIdentifiers": [{"name": "a", "value": "b"}]}}},
        {"properties": {"points": 10, "rewards": ["a"], "order": {"Order Id": "1"}}},
        {"occurredAt": "2024-01-01T10:00:00.123456789+02:00", "externalEventId": "e-1"},
    ],
)
def test_good_custom_events_pass(changes: dict[str, Any]) -> None:
    assert custom_event_problem({**EVENT, **changes}) is None


@given(st.text(min_size=1).filter(str.strip))
def test_event_types_with_forbidden_characters_are_refused(text: str) -> None:
    problem = custom_event_problem({**EVENT, "type": text})
    assert (problem is None) == (not set(text) & set("\"'(){}[]\\|,"))


def test_custom_attributes_body_rules() -> None:
    good = {"properties": {"vip": True}, "user": {"phone": "+15550000001"}}
    assert custom_attributes_problem(good) is None
    assert "required" in (custom_attributes_problem({"user": good["user"]}) or "")
    nested = {**good, "properties": {"list": [1]}}
    assert "string, number or boolean" in (custom_attributes_problem(nested) or "")


def test_close_objects_leaves_open_maps_and_unsatisfiable_schemas_open() -> None:
    closed = close_objects(
        {
            "properties": {"a": {"properties": {"b": {}}}, "m": {"additionalProperties": {}}},
            "required": ["a"],
        }
    )
    assert closed["additionalProperties"] is False
    assert closed["properties"]["a"]["additionalProperties"] is False
    assert closed["properties"]["m"]["additionalProperties"] == {}
    assert "additionalProperties" not in close_objects({"properties": {}, "required": ["x"]})


JSON_LEAF = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(alphabet="ab+1@", max_size=4)
)
KEYS = st.sampled_from(
    [
        "identifiers",
        "attributes",
        "phone",
        "email",
        "custom",
        "customIdentifiers",
        "key",
        "value",
        "demographic",
        "age",
        "subscriptions",
        "channel",
        "x",
    ]
)
JSON = st.recursive(
    JSON_LEAF,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=12,
)


@given(st.lists(JSON, min_size=1, max_size=6))
def test_memoised_verdicts_match_a_fresh_validation(instances: list[Any]) -> None:
    check = SchemaCheck("v2", "CreateUserAttributesRequestDtoV21")
    fresh = Draft4Validator(
        {"$ref": "urn:attentive:v2#/components/schemas/CreateUserAttributesRequestDtoV21"},
        registry=registry(),
    )
    for instance in instances * 2:
        assert (check.problem(instance) is None) == fresh.is_valid(instance)


@given(st.text(alphabet="QZ", min_size=3, max_size=6))
def test_schema_messages_never_quote_values(marker: str) -> None:
    check = SchemaCheck("v2", "CreateUserAttributesRequestDtoV21")
    for item in (
        with_attrs(demographic={"age": marker}),
        {"identifiers": marker},
        with_ids(customIdentifiers=[marker]),
        {"identifiers": IDS, "subscriptions": [{"channel": marker}]},
    ):
        problem = check.problem(item)
        assert problem is not None and marker not in problem


# Values on both sides of every rule's edge, plus anything from a small alphabet; good
# values are drawn often, so one bad value usually sits in an otherwise good user.
EDGES = ["", " ", "\t", "x" * 100, "x" * 101, "ada@example", "a b@c.d", "+1555"]
EDGES += ["+15550000001\n", "ada@example.com\n", "+15550000001", "ada@example.com", "c1"]
GOOD = {"phone": "+15550000001", "email": "ada@example.com", "clientUserId": "c1"}
GOOD |= {"shopifyId": "s1", "klaviyoId": "k1", "c": "v"}


def _id_value(kind: str) -> st.SearchStrategy[str]:
    edge = st.sampled_from(EDGES) | st.text(alphabet="a+1@. \n\t", max_size=8)
    return st.one_of(st.just(GOOD[kind]), st.just(GOOD[kind]), edge)


KINDS = ["phone", "email", "clientUserId", "shopifyId", "klaviyoId"]
IDENTIFIERS = st.fixed_dictionaries({}, optional={kind: _id_value(kind) for kind in KINDS}) | (
    st.fixed_dictionaries(
        {
            "customIdentifiers": st.lists(
                st.dictionaries(st.sampled_from(["key", "value"]), _id_value("c"))
            )
        }
    )
)
CUSTOM_VALUES = (
    st.none() | st.booleans() | st.integers() | st.text(max_size=3) | st.lists(st.none())
)
ATTRIBUTES = st.fixed_dictionaries(
    {},
    optional={
        "firstName": st.text(max_size=3),
        "demographic": st.fixed_dictionaries(
            {}, optional={"dateOfBirth": st.sampled_from(["1990-02-28", "1990-02-30", ""])}
        ),
        "custom": st.dictionaries(
            st.sampled_from(["tier", "", " ", "\t", "n" * 200, "n" * 201]) | st.text(max_size=3),
            CUSTOM_VALUES,
            max_size=3,
        ),
    },
)


@settings(max_examples=500)
@given(IDENTIFIERS, ATTRIBUTES)
@example({"clientUserId": "x" * 101}, {})
@example({"email": "a b@c.d"}, {})
@example({"phone": "+1555"}, {})
@example({"email": "ada@example.com"}, {"custom": {"tags": ["a"]}})
@example({"email": "ada@example.com"}, {"custom": {"n" * 201: 1}})
@example({"email": "ada@example.com"}, {"demographic": {"dateOfBirth": "1990-02-30"}})
def test_the_quick_accept_never_passes_what_the_rules_refuse(
    identifiers: dict[str, Any], attributes: dict[str, Any]
) -> None:
    """The bulk path's shortcut may only say yes where every documented rule says yes."""
    if rules.v2_user_plainly_valid(identifiers, attributes):
        rules.check_v2_identifiers(identifiers)
        rules.check_attributes(attributes)


def test_the_quick_accept_takes_the_common_user() -> None:
    ids = {"phone": "+15550000001", "email": "ada@example.com", "clientUserId": "c1"}
    attributes = {"firstName": "Ada", "custom": {"tier": "Gold", "VIP audience": True}}
    assert rules.v2_user_plainly_valid(ids, attributes)
    assert not rules.v2_user_plainly_valid({**ids, "email": "ada at example"}, attributes)
    assert not rules.v2_user_plainly_valid(ids, {"custom": {" ": 1}})
