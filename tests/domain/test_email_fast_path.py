"""The email fast path answers exactly as ``email-validator`` does, on any input.

``normalize_email`` decides plain addresses (a dot-separated local part of letters, digits
and ``_ + -`` at a domain the library already accepted) without the library's per-address
work. These tests hold it to the library itself: the same address back, or the same refusal.
"""

from __future__ import annotations

import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import example, given, settings
from hypothesis import strategies as st

from attentive_sync.domain.errors import RecordRejected
from attentive_sync.domain.identifiers import _plain_domain, normalize_email


def library(raw: str) -> str | None:
    """The library's answer, lower-cased as the project stores emails; None for a refusal."""
    try:
        return validate_email(raw.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError:
        return None


def ours(raw: str) -> str | None:
    try:
        return normalize_email(raw)
    except RecordRejected:
        return None


# Characters near the fast path's edges: what it takes, what it must hand on, and what
# the library treats specially (dots, quotes, unicode, whitespace, the at sign).
EDGE = "aZ09_+-.@\"'!#$%&*/=?^`{|}~ ()<>[]:;,\\\u00e9\u00df\u0130\uff41\u200b\t"
labels = st.text(alphabet="abcxyz019-", min_size=0, max_size=70)
domains = st.lists(labels, min_size=1, max_size=5).map(".".join)
locals_ = st.text(alphabet=EDGE, min_size=0, max_size=80)


@settings(max_examples=3000, deadline=None)
@given(local=locals_, domain=st.one_of(domains, st.sampled_from(["example.com", "EXAMPLE.com"])))
@example(local="two@", domain="example.com")
@example(local="a1039", domain="example.")
@example(local="Mixed.Case", domain="Example.COM")
@example(local="a" * 64, domain="example.com")
@example(local="a" * 65, domain="example.com")
@example(local="a" * 64, domain=".".join(["b" * 63] * 3) + ".com")
@example(local="x", domain="localhost")
@example(local="x", domain="example.test")
@example(local="x", domain="123.com")
def test_fast_path_agrees_with_the_library(local: str, domain: str) -> None:
    raw = f"{local}@{domain}"
    assert ours(raw) == library(raw)


@settings(max_examples=1000, deadline=None)
@given(st.text(alphabet=EDGE, max_size=40))
def test_any_text_agrees_with_the_library(raw: str) -> None:
    assert ours(raw) == library(raw)


@pytest.mark.parametrize("raw", [" Jane.Doe+tag@Example.com ", "x_y-z@sub.example.co.uk"])
def test_common_addresses_take_the_fast_path(raw: str) -> None:
    """The fast path is really taken for ordinary addresses (else it would prove nothing)."""
    _plain_domain.cache_clear()
    assert normalize_email(raw) == raw.strip().lower()
    assert _plain_domain.cache_info().misses == 1
