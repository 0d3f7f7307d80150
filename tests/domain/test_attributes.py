from datetime import date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from attentive_sync.domain.attributes import attribute_type, build_attributes, custom_value
from attentive_sync.domain.errors import RecordRejected
from attentive_sync.domain.identifiers import build_identifiers
from attentive_sync.domain.users import BulkUser


def test_well_known_attributes_land_in_their_v2_groups():
    attrs = build_attributes(
        {"firstName": "Jane", "city": "Brooklyn", "dateOfBirth": date(1990, 5, 17), "age": "33"}
    )
    assert attrs.to_wire() == {
        "firstName": "Jane",
        "demographic": {"dateOfBirth": "1990-05-17", "age": 33},
        "location": {"city": "Brooklyn"},
    }


@pytest.mark.parametrize("value", ["1990-05-17", "1990-05-17T10:00:00", datetime(1990, 5, 17, 3)])
def test_date_of_birth_always_yyyy_mm_dd(value):
    assert build_attributes({"dateOfBirth": value}).to_wire()["demographic"]["dateOfBirth"] == (
        "1990-05-17"
    )


def test_bad_date_of_birth_rejected():
    with pytest.raises(RecordRejected, match="dateOfBirth"):
        build_attributes({"dateOfBirth": "17/05/1990"})


def test_lists_become_comma_separated_text():
    assert build_attributes(custom={"tags": ["shoes", "hats", None]}).custom == {
        "tags": "shoes,hats"
    }


@pytest.mark.parametrize("value", [{"a": 1}, [["nested"]], object()])
def test_objects_rejected(value):
    with pytest.raises(RecordRejected) as info:
        custom_value("x", value)
    assert info.value.code == "invalid_attribute"


def test_overlong_name_rejected():
    with pytest.raises(RecordRejected):
        custom_value("n" * 201, 1)


def test_missing_values_dropped():
    assert build_attributes({"firstName": ""}, {"vip": None, "nan": float("nan")}).to_wire() == {}


@given(st.text(alphabet=" \t\r\n\u00a0\u3000", max_size=5))
def test_whitespace_only_text_is_never_sent(value):
    assert custom_value("attr", value) is None
    assert custom_value("tags", [value, " a "]) == "a"
    assert build_attributes({"state": value, "city": f" {value}Oslo{value} "}).to_wire() == {
        "location": {"city": "Oslo"}
    }


def test_unknown_well_known_attribute_is_configuration_error():
    with pytest.raises(ValueError, match="unknown attribute"):
        build_attributes({"favouriteColour": "green"})


@given(
    st.one_of(
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(min_size=1).filter(str.strip),
    )
)
def test_primitives_pass_through_with_stable_type(value):
    coerced = custom_value("attr", value)
    assert coerced == (value.strip() if isinstance(value, str) else value)
    assert (
        attribute_type(coerced)
        == {bool: "boolean", int: "number", float: "number", str: "string"}[type(value)]
    )


def test_bulk_user_wire_shape():
    user = BulkUser(
        customer_id=42,
        identifiers=build_identifiers({"phone": "(415) 555-2671"}),
        attributes=build_attributes({"firstName": "Jane"}, {"vip": True}),
    )
    assert user.to_wire() == {
        "identifiers": {"phone": "+14155552671"},
        "attributes": {"firstName": "Jane", "custom": {"vip": True}},
    }
