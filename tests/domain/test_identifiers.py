import pytest
from hypothesis import given
from hypothesis import strategies as st

from attentive_sync.domain.errors import RecordRejected
from attentive_sync.domain.identifiers import build_identifiers, normalize_email, normalize_phone


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


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Mixed.Case@Example.COM", "mixed.case@example.com"),
        ("  jane@example.com\t", "jane@example.com"),
        ("jane+tag@sub.example.co.uk", "jane+tag@sub.example.co.uk"),
        ("JOSÉ@Exämple.com", "josé@exämple.com"),
    ],
)
def test_email_trimmed_checked_and_lower_cased(raw, expected):
    assert normalize_email(raw) == expected
    assert build_identifiers({"email": raw}).to_wire() == {"email": expected}


MALFORMED = [
    "two@@example.com",
    "a1039@example.",
    "no-at-sign.example.com",
    "@example.com",
    "jane@",
    "jane@example",
    "jane doe@example.com",
    "jane@exa mple.com",
    "a..b@example.com",
    "jane@.example.com",
]


@pytest.mark.parametrize("raw", MALFORMED)
def test_malformed_email_alone_quarantines_the_record_with_a_reason(raw):
    with pytest.raises(RecordRejected) as info:
        build_identifiers({"email": raw, "phone": "  ", "clientUserId": " "})
    assert info.value.code == "invalid_email"
    assert "no other identifier" in info.value.detail
    local = raw.partition("@")[0]
    assert not local.strip() or local not in info.value.detail  # never the address itself


@pytest.mark.parametrize("raw", MALFORMED)
def test_malformed_email_is_left_out_when_another_identifier_remains(raw):
    ids = build_identifiers({"email": raw, "clientUserId": "cu-1"}, custom={"loyalty_id": " "})
    assert ids.to_wire() == {"clientUserId": "cu-1"}
    assert ids.dropped == ("email",)


@given(st.text(alphabet=" \t\r\n\u00a0\u3000", max_size=4))
def test_whitespace_only_identifiers_are_never_sent(blank):
    ids = build_identifiers(
        {"phone": blank, "email": blank, "clientUserId": "7", "klaviyoId": blank},
        custom={"loyalty_id": blank},
    )
    assert ids.to_wire() == {"clientUserId": "7"} and ids.dropped == ()
