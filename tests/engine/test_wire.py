"""``WireMapper`` gives what the typed ``Mapper`` gives, byte for byte, or the same refusal."""

import json
import math
from datetime import date, datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attentive_sync.domain.errors import RecordRejected
from attentive_sync.domain.export_config import ExportConfig
from attentive_sync.engine.delivery.submit import make_batch, wire_of
from attentive_sync.engine.mapping import Mapper
from attentive_sync.engine.wire import WireMapper
from attentive_sync.sources.errors import UnreadableValue
from attentive_sync.store.jobs import JobItem

CONFIG = ExportConfig(
    audiences=["vip", "newsletter"],
    identifier_mappings={
        "phone": "phone",
        "email": "email",
        "client_user_id": "clientUserId",
        "shopify_id": "shopifyId",
    },
    attribute_mappings={
        "first_name": "firstName",
        "birthday": "dateOfBirth",
        "city": "city",
        "age": "age",
    },
    custom_attributes=["tier", "points", "favorite_categories", "joined"],
)
DIGITS = st.text(st.sampled_from("0123456789"), min_size=1, max_size=12)
PHONE = st.one_of(
    st.none(),
    st.sampled_from(["", "  ", "(415) 555-2671", "+14155552671", "415.234.5678", "5551234",
                     "+44 7911 123456", "(212) 123-4567", " 312-555-0100 ", "not a phone"]),
    st.builds("({}) {}-{}".format, st.sampled_from(["415", "212", "800", "011"]), DIGITS, DIGITS),
    st.builds("+1{}{}".format, st.sampled_from(["415", "212", "246"]), DIGITS),
)  # fmt: skip
TEXT = st.one_of(st.none(), st.text(max_size=12), st.sampled_from(["", " ", "x" * 101]))
EMAIL = st.one_of(
    TEXT,
    st.sampled_from(["Jane@Example.com", " jane@example.com ", "jane@", "@x.com", "a b@c.d"]),
)
VALUE = st.one_of(
    st.none(),
    st.text(max_size=8),
    st.integers(-5, 5),
    st.booleans(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(['["shoes","hats"]', "[1, null]", "[", '{"a": 1}', "[[1]]", "[]"]),
    st.just(date(1990, 5, 17)),
    st.just(datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)),
    st.lists(st.one_of(st.none(), st.text(max_size=3), st.integers()), max_size=3),
)
BIRTHDAY = st.one_of(
    st.none(), st.just(date(1990, 5, 17)), st.sampled_from(["1990-05-17", "17/05/1990", "", " "])
)
UNREADABLE = st.one_of(st.none(), st.just(UnreadableValue("birthday", "not a valid date")))


@st.composite
def rows(draw: st.DrawFn) -> dict:
    row = {
        "customer_id": 42,
        "phone": draw(PHONE),
        "email": draw(EMAIL),
        "client_user_id": draw(TEXT),
        "shopify_id": draw(st.one_of(TEXT, st.integers(1, 10**12))),
        "first_name": draw(TEXT),
        "birthday": draw(BIRTHDAY),
        "city": draw(st.one_of(TEXT, st.integers())),
        "age": draw(st.one_of(st.none(), st.integers(0, 99), st.sampled_from(["41", "x", 4.5]))),
        "tier": draw(VALUE),
        "points": draw(VALUE),
        "favorite_categories": draw(VALUE),
        "joined": draw(VALUE),
    }
    if (bad := draw(UNREADABLE)) is not None:
        row["birthday"] = bad
    return row


def outcome(map_row):
    """The wire JSON text (key order included), or the refusal's code and detail."""
    try:
        return json.dumps(map_row())
    except RecordRejected as exc:
        return (exc.code, exc.detail)


@settings(max_examples=3000, deadline=None)
@given(row=rows(), vip=st.booleans(), newsletter=st.one_of(st.none(), st.booleans()))
def test_wire_mapper_agrees_with_the_typed_mapper(row, vip, newsletter):
    memberships = {"vip": vip} if newsletter is None else {"vip": vip, "newsletter": newsletter}
    typed = outcome(lambda: Mapper(CONFIG).map(row, memberships).to_wire())
    fast = outcome(lambda: wire_of(WireMapper(CONFIG).map(row, memberships)))
    assert fast == typed


def test_custom_identifiers_take_the_typed_path():
    config = CONFIG.model_copy(update={"extra_identifiers": ["loyalty_id"]})
    row = {"customer_id": 1, "phone": "(415) 555-2671", "loyalty_id": "L1"}
    wire = wire_of(WireMapper(config).map(row, {"vip": True}))
    assert wire == Mapper(config).map(row, {"vip": True}).to_wire()
    assert wire["identifiers"]["customIdentifiers"] == [{"key": "loyalty_id", "value": "L1"}]


def test_unusual_value_types_take_the_typed_path():
    class Tier(str):
        pass

    row = {"customer_id": 1, "email": "a@b.co", "tier": Tier("Gold"), "points": math.pi}
    wire = wire_of(WireMapper(CONFIG).map(row, {"vip": True}))
    assert wire == Mapper(CONFIG).map(row, {"vip": True}).to_wire()


@pytest.mark.parametrize("phone", ["(415) 555-2671", "+14155552671", "415.555.2671"])
def test_plain_notations_map_to_e164(phone):
    wire = wire_of(WireMapper(CONFIG).map({"customer_id": 1, "phone": phone}, {"vip": True}))
    assert wire == {
        "identifiers": {"phone": "+14155552671"},
        "attributes": {"custom": {"vip": True}},
    }


def test_an_invalid_email_beside_another_identifier_is_left_out_and_counted():
    """The typed path's rule: the email is left out, the record goes on, the batch counts it."""
    row = {"customer_id": 7, "phone": "(415) 555-2671", "email": "two@@example.com"}
    user = WireMapper(CONFIG).map(row, {"vip": True})
    batch = make_batch([(user, JobItem(7, "backfill", "vip", {"vip": True}))])
    assert batch.users[0]["identifiers"] == {"phone": "+14155552671"}
    assert batch.dropped_emails == 1
    with pytest.raises(RecordRejected) as refused:
        WireMapper(CONFIG).map({"customer_id": 8, "email": "a1039@example."}, {"vip": True})
    assert refused.value.code == "invalid_email"
