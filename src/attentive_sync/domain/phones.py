"""A fast path for the phone notations whose E.164 form is not in doubt.

``identifiers.normalize_phone`` asks ``phonenumbers`` to parse and validate every phone,
about 35 us each. Most source phones are North American numbers in one of a few plain
notations (``+14155552671``, ``(415) 555-2671``, ``415-555-2671``, ``415.555.2671``,
``4155552671``) whose digits are plain to read; for those only the validity verdict is
left, and ``phonenumbers`` stays the judge of it:

- the verdict for a 10-digit NANP number depends only on its first few digits whenever
  every number pattern of every NANP region in ``phonenumbers``' metadata is a fixed-width
  prefix followed by any digits. ``decisive_prefix`` proves that from the metadata installed
  (parsing the patterns themselves), so the verdict is asked once per prefix and remembered;
  if the proof fails for a future metadata, every number is asked;
- anything else (another notation, another country, a region outside the NANP) goes to
  ``phonenumbers`` unchanged.

A hypothesis test proves the two paths agree with ``normalize_phone`` itself.
"""

from __future__ import annotations

import importlib
import re
import sys
import threading
from collections.abc import Iterable, Iterator
from functools import cache
from typing import Any

import phonenumbers
from phonenumbers import PhoneMetadata, PhoneNumber
from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE

# The standard library's own regex parser (``sre_parse``, moved to ``re._parser`` in 3.11):
# it reads the metadata's patterns exactly as ``re`` will match them.
_MODERN = sys.version_info >= (3, 11)
sre = importlib.import_module("re._constants" if _MODERN else "sre_constants")
sre_parse = importlib.import_module("re._parser" if _MODERN else "sre_parse")

NANP = 1
NATIONAL_DIGITS = 10
# The descriptions ``phonenumbers`` matches a national number against to find its type.
_DESCS = (
    "general_desc",
    "premium_rate",
    "toll_free",
    "shared_cost",
    "voip",
    "personal_number",
    "pager",
    "uan",
    "voicemail",
    "fixed_line",
    "mobile",
)
# Notations whose ten digits are plain: +1 then ten digits, or the three groups of a
# national number written one of four usual ways. The area code never starts with 0 or 1
# (a leading 1 would be read as the national prefix).
_PLAIN = re.compile(
    r"\+1([2-9]\d{9})"
    r"|\(([2-9]\d\d)\) (\d{3})-(\d{4})"
    r"|([2-9]\d\d)-(\d{3})-(\d{4})"
    r"|([2-9]\d\d)\.(\d{3})\.(\d{4})"
    r"|([2-9]\d{9})"
)
_CACHE_LIMIT = 1 << 20  # verdicts kept; a prefix has 7 digits, so this is never reached in practice


def _any_digit(item: tuple[Any, Any]) -> bool:
    """Whether a parsed regex item matches exactly any run of digits of a fixed length."""
    op, arg = item
    if op is sre.MAX_REPEAT or op is sre.MIN_REPEAT:
        low, high, sub = arg
        return bool(low == high and all(_any_digit(i) for i in sub))
    return bool(op is sre.IN and arg == [(sre.CATEGORY, sre.CATEGORY_DIGIT)])


def _width(items: Iterable[tuple[Any, Any]], state: Any) -> tuple[int, int]:
    low, high = sre_parse.SubPattern(state, list(items)).getwidth()
    return int(low), int(high)


def _needed(items: list[tuple[Any, Any]], state: Any) -> int | None:
    """How many leading characters decide a full match of this fixed-width sequence, or
    ``None`` when that is not provable."""
    position = needed = 0
    for item in items:
        low, high = _width([item], state)
        if low != high:
            return None
        op, arg = item
        if op is sre.BRANCH:
            inner = [_needed(list(alt), state) for alt in arg[1]]
            if any(n is None for n in inner):
                return None
            needed = max(needed, position + max(n for n in inner if n is not None))
        elif not _any_digit(item):
            needed = position + low
        position += low
    return needed


def _pattern_prefix(pattern: str, length: int) -> int | None:
    """Leading digits that decide whether ``pattern`` fully matches a ``length``-digit string."""
    tree = sre_parse.parse(pattern)
    items = list(tree)
    alternatives = items[0][1][1] if len(items) == 1 and items[0][0] is sre.BRANCH else [tree]
    needed = 0
    for alternative in alternatives:
        low, high = _width(alternative, tree.state)
        if low != high:
            return None
        if low != length:
            continue  # can never fully match a number of this length
        n = _needed(list(alternative), tree.state)
        if n is None:
            return None
        needed = max(needed, n)
    return needed


def _nanp_patterns() -> Iterator[tuple[str, bool]]:
    """Every pattern validity depends on: (pattern, whether it is matched as a prefix)."""
    for region in COUNTRY_CODE_TO_REGION_CODE[NANP]:
        metadata = PhoneMetadata.metadata_for_region(region)
        if metadata is None:
            continue
        if metadata.leading_digits:
            yield metadata.leading_digits, True
        for name in _DESCS:
            desc = getattr(metadata, name, None)
            if desc is not None and desc.national_number_pattern:
                yield desc.national_number_pattern, False


@cache
def decisive_prefix() -> int | None:
    """How many leading digits of a 10-digit NANP number decide ``phonenumbers``' validity
    verdict, proven from its metadata; ``None`` when not provable (then nothing is cached)."""
    needed = 0
    try:
        for pattern, as_prefix in _nanp_patterns():
            if as_prefix:
                low, high = _width(sre_parse.parse(pattern), None)
                n: int | None = high if high <= NATIONAL_DIGITS else None
            else:
                n = _pattern_prefix(pattern, NATIONAL_DIGITS)
            if n is None:
                return None
            needed = max(needed, n)
    except (re.error, TypeError, ValueError, IndexError, AttributeError):
        return None
    return needed


@cache
def _is_nanp_region(region: str) -> bool:
    return phonenumbers.country_code_for_region(region) == NANP


def plain_nanp_digits(raw: str, region: str) -> str | None:
    """The ten national digits of ``raw`` when its notation leaves no doubt about them."""
    match = _PLAIN.fullmatch(raw)
    if match is None:
        return None
    if match.group(1) is None and not _is_nanp_region(region.upper()):
        return None  # a national notation means a NANP number only in a NANP region
    return "".join(g for g in match.groups() if g)


class NanpVerdicts:
    """``phonenumbers``' validity verdict for NANP numbers, remembered per decisive prefix."""

    def __init__(self) -> None:
        self._known: dict[str, bool] = {}
        self._lock = threading.Lock()

    def is_valid(self, digits: str) -> bool:
        size = decisive_prefix()
        key = digits[:size] if size is not None else None
        if key is not None and (known := self._known.get(key)) is not None:
            return known
        number = PhoneNumber(country_code=NANP, national_number=int(digits))
        verdict = bool(phonenumbers.is_valid_number(number))
        if key is not None:
            with self._lock:
                if len(self._known) >= _CACHE_LIMIT:
                    self._known.clear()
                self._known[key] = verdict
        return verdict


VERDICTS = NanpVerdicts()


def fast_e164(raw: str, region: str) -> str | None:
    """``raw`` as E.164 when its notation is plain and ``phonenumbers`` calls it valid;
    ``None`` when the slow path must decide (including every invalid number, so the
    error it raises is the one ``normalize_phone`` raises)."""
    digits = plain_nanp_digits(raw, region)
    if digits is None or not VERDICTS.is_valid(digits):
        return None
    return f"+1{digits}"
