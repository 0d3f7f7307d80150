"""Masking of personal data for logs, reports and the quarantine.

Phone numbers and emails never reach a log line or a report in clear text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import phonenumbers
from phonenumbers import Leniency

_EMAIL_RE = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+\.[A-Za-z]{2,})")

_DIGIT_RUN_RE = re.compile(r"\+?\d[\d ().-]*\d")
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")


def mask_phone(value: str) -> str:
    """Keep the last two digits: ``+14155552671`` -> ``+*********71``."""
    digits = [c for c in value if c.isdigit()]
    if len(digits) <= 2:
        return "*" * len(value)
    prefix = "+" if value.startswith("+") else ""
    return prefix + "*" * (len(digits) - 2) + "".join(digits[-2:])


def mask_email(value: str) -> str:
    """Keep the first character and the domain: ``jane@example.com`` -> ``j***@example.com``."""
    local, sep, domain = value.partition("@")
    if not sep:
        return "*" * len(value)
    return f"{local[:1]}***@{domain}"


def mask_text(text: str, region: str = "US") -> str:
    """Mask every email and phone number found inside free text (error bodies, messages).

    Phone numbers are found by ``phonenumbers``' matcher, so dates, timestamps and order
    numbers stay readable while anything that could be dialled is masked.
    """
    text = _EMAIL_RE.sub(lambda m: mask_email(m.group(0)), text)
    matches = phonenumbers.PhoneNumberMatcher(text, region, leniency=Leniency.POSSIBLE)
    for match in reversed(list(matches)):
        text = text[: match.start] + mask_phone(match.raw_string) + text[match.end :]
    # Numbers no region would accept (the ones Attentive's rejections repeat) still look
    # like phone numbers: any run of 7+ digits that is not a date, a time or a decimal.
    return _DIGIT_RUN_RE.sub(_mask_digit_run, text)


def _mask_digit_run(match: re.Match[str]) -> str:
    run = match.group(0)
    digits = sum(c.isdigit() for c in run)
    if digits < 7 or _DATE_RE.fullmatch(run) or ("." in run and not run.startswith("+")):
        return run
    return mask_phone(run)


def mask_payload(value: Any) -> Any:
    """Return a deep copy of a JSON-like value with phone and email fields masked."""
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key == "phone" and isinstance(item, str):
                out[key] = mask_phone(item)
            elif key == "email" and isinstance(item, str):
                out[key] = mask_email(item)
            else:
                out[key] = mask_payload(item)
        return out
    if isinstance(value, list):
        return [mask_payload(item) for item in value]
    if isinstance(value, str):
        return mask_text(value)
    return value
