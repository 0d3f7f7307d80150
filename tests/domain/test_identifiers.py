import pytest
from hypothesis import given
from hypothesis import strategies as st

from attentive_sync.domain.errors import RecordRejected
from attentive_sync.domain.identifiers import build_identifiers, normalize_phone


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("(415) 555-2671", "US", "+14155552671"),
        ("415.555.2671", "US", "+14155552671"),
        ("+1 415 555 2671", "US", "+14155552671"),
        ("+14155552671", "GB", "+14155552671"),
        ("07911 123456", "GB", "+447911123456"),
        ("+61 412 345 678", "US", "+61412345678"),
    ],
)
def test_phone_normalised_to_e164(raw, region, expected):
    assert normalize_phone(raw, region) == expected


@pytest.mark.parametrize("raw", ["5551234", "12", "not a phone", "+1 555 0100", "0000000000"])
def test_invalid_phone_rejected_with_reason(raw):
    with pytest.raises(RecordRejected) as info:
        normalize_phone(raw)
    assert info.value.code == "invalid_phone"
    assert raw not in info.value.detail  # the reason never carries the number itself


def test_empty_values_dropped_and_never_sent():
    ids = build_identifiers({"phone": "  ", "email": "jane@example.com", "clientUserId": None})
    assert ids.to_wire() == {"email": "jane@example.com"}


def test_no_identifier_rejected():
    with pytest.raises(RecordRejected) as info:
        build_identifiers({"phone": "", "email": None}, custom={"loyalty_id": ""})
    assert info.value.code == "no_identifier"


def test_custom_identifiers_use_v2_key_name():
    ids = build_identifiers({"clientUserId": "42"}, custom={"loyalty_id": "L-42"})
    assert ids.to_wire() == {
        "clientUserId": "42",
        "customIdentifiers": [{"key": "loyalty_id", "value": "L-42"}],
    }


def test_overlong_client_user_id_rejected():
    with pytest.raises(RecordRejected) as info:
        build_identifiers({"clientUserId": "x" * 101})
    assert info.value.code == "invalid_identifier"


def test_unknown_identifier_name_is_a_configuration_error():
    with pytest.raises(ValueError, match="unknown identifier"):
        build_identifiers({"mobile": "+14155552671"})


@given(st.text(max_size=30))
def test_any_input_is_either_e164_or_rejected(raw):
    try:
        phone = normalize_phone(raw)
    except RecordRejected as exc:
        assert exc.code == "invalid_phone"
    else:
        assert phone.startswith("+") and phone[1:].isdigit() and 8 <= len(phone) <= 16


@given(st.text(min_size=1, max_size=100).filter(lambda s: s.strip()))
def test_client_user_id_within_limit_is_kept_trimmed(value):
    ids = build_identifiers({"clientUserId": value})
    assert ids.client_user_id == value.strip()
