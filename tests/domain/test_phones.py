"""The phone fast path agrees with ``normalize_phone`` (that is, with phonenumbers) itself."""

import phonenumbers
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE

from attentive_sync.domain.errors import RecordRejected
from attentive_sync.domain.identifiers import normalize_phone
from attentive_sync.domain.phones import (
    NanpVerdicts,
    _pattern_prefix,
    decisive_prefix,
    fast_e164,
    plain_nanp_digits,
)

NANP_REGIONS = list(COUNTRY_CODE_TO_REGION_CODE[1])
REGIONS = st.sampled_from([*NANP_REGIONS, "GB", "DE", "FR", "AU", "IN", "MX", "BR"])
DIGIT = st.sampled_from("0123456789")
# Few area codes and exchanges, so numbers share their decisive prefix and the remembered
# verdict of one is what decides another.
AREA = st.sampled_from(["415", "212", "246", "268", "876", "800", "521", "555", "011", "123"])
EXCHANGE = st.one_of(
    st.sampled_from(["555", "234", "521", "606", "100"]), st.text(DIGIT, min_size=3, max_size=3)
)
LINE = st.text(DIGIT, min_size=4, max_size=4)
NOTATIONS = [
    *("+1{a}{e}{n}", "({a}) {e}-{n}", "{a}-{e}-{n}", "{a}.{e}.{n}", "{a}{e}{n}"),
    *("1{a}{e}{n}", "+1 {a} {e} {n}", "({a}){e}-{n}", "{a}-{e}{n}", "+{a}{e}{n}"),
]


@st.composite
def phones(draw: st.DrawFn) -> str:
    shape = draw(st.sampled_from(NOTATIONS))
    raw = shape.format(a=draw(AREA), e=draw(EXCHANGE), n=draw(LINE))
    return draw(st.one_of(st.just(raw), st.text(st.sampled_from("0123456789()+-. x"), max_size=16)))


def slow(raw: str, region: str) -> str | None:
    try:
        return normalize_phone(raw, region)
    except RecordRejected:
        return None


def test_the_installed_metadata_proves_a_decisive_prefix():
    # Without a proof the fast path still agrees, but asks phonenumbers for every number.
    assert decisive_prefix() is not None
    assert 3 <= (decisive_prefix() or 0) <= 9


@pytest.mark.parametrize(
    ("pattern", "needed"),
    [
        (r"[2-9]\d{9}", 1),
        (r"52(?:3\d|4[0-5])\d{6}", 4),
        (r"246521[0369]\d{3}|246(?:2(?:2[78]|7[0-4]))\d{4}", 7),
        (r"3\d{6}", 0),  # never matches ten digits
        (r"\d{3,10}", None),  # not of fixed width: unprovable
        (r"(?:2\d+)\d{4}", None),
    ],
)
def test_pattern_prefix(pattern, needed):
    assert _pattern_prefix(pattern, 10) == needed


@settings(max_examples=3000, deadline=None)
@given(raw=phones(), region=REGIONS)
@example(raw="(415) 555-2671", region="US")
@example(raw="+14155552671", region="GB")
@example(raw="4155552671", region="GB")
@example(raw="+12462345678", region="US")
@example(raw="(800) 234-5678", region="CA")
def test_fast_path_agrees_with_phonenumbers(raw, region):
    fast = fast_e164(raw, region)
    expected = slow(raw, region)
    if fast is not None:
        assert fast == expected
    digits = plain_nanp_digits(raw, region)
    if digits is not None:
        # A plain notation reads as exactly these digits, and the verdict is phonenumbers'.
        assert phonenumbers.parse(raw, region) == phonenumbers.PhoneNumber(
            country_code=1, national_number=int(digits)
        )
        assert (fast is not None) == (expected is not None)


@settings(max_examples=2000, deadline=None)
@given(st.lists(st.tuples(AREA, EXCHANGE, LINE), min_size=1, max_size=40))
def test_remembered_verdicts_are_phonenumbers_verdicts(numbers):
    verdicts = NanpVerdicts()
    for area, exchange, line in numbers:
        digits = f"{area}{exchange}{line}"
        number = phonenumbers.PhoneNumber(country_code=1, national_number=int(digits))
        assert verdicts.is_valid(digits) == phonenumbers.is_valid_number(number)


def test_other_notations_and_regions_go_to_phonenumbers():
    assert plain_nanp_digits("+1 415 555 2671", "US") is None
    assert plain_nanp_digits("07911 123456", "GB") is None
    assert plain_nanp_digits("4155552671", "GB") is None  # national notation outside the NANP
    assert plain_nanp_digits("+14155552671", "GB") == "4155552671"
    assert fast_e164("(415) 123-4567", "US") is None  # invalid: the slow path raises
