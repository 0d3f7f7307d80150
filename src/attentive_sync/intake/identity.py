"""Which program customer a platform's event is about.

A platform names its customer three ways: its own id, the store's customer id
(``merchant_id``) and the email. The merchant chooses which one matches the program's
``customers`` table (``ATTENTIVE_SYNC_LOYALTY_MATCH``):

* ``merchant_id`` (default): ``customers.customer_id`` is the store's customer id;
* ``platform_id``: ``customers.customer_id`` is the platform's own customer id;
* ``email``: ``customers.email``, trimmed and case-folded (the lowest id on a tie).

A customer with no row is not dropped: the event is queued under a synthetic customer id
from a reserved range (``UNMATCHED_BASE`` and up, never a program id; one per platform
customer, so a customer's events stay in order) with the identifiers the delivery carries
in the payload under ``RECIPIENT_KEY``. The relay sends it to those identifiers; with none
it is quarantined as ``no_identifier``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import Engine

from attentive_sync.domain.loyalty.catalogue import UNMATCHED_BASE
from attentive_sync.intake.platform import PlatformCustomer
from attentive_sync.sources.loyalty import customer_ids_by_email, load_customers

MatchBy = Literal["merchant_id", "platform_id", "email"]

_MAX_ID = 2**63 - 1


@dataclass(frozen=True)
class Recipient:
    """The queue's customer id for an event, and the identifiers to carry if unmatched."""

    customer_id: int
    identifiers: dict[str, str] | None = None

    @property
    def matched(self) -> bool:
        return self.identifiers is None


def _as_id(value: int | str | None) -> int | None:
    if value is None:
        return None
    text = str(value).strip()
    if not text.isdigit():
        return None
    number = int(text)
    return number if 1 <= number < UNMATCHED_BASE else None


def unmatched_id(platform: str, customer: PlatformCustomer) -> int:
    """A stable id in the reserved range for a platform customer with no program row."""
    handle = (
        f"id:{customer.platform_id}"
        if customer.platform_id is not None
        else f"merchant:{customer.merchant_id}"
        if customer.merchant_id
        else f"email:{(customer.email or '').strip().lower()}"
    )
    digest = hashlib.sha256(f"{platform}\x1f{handle}".encode()).digest()
    return UNMATCHED_BASE + int.from_bytes(digest[:8], "big") % (_MAX_ID - UNMATCHED_BASE)


class Matcher:
    """Resolves platform customers against the program's ``customers`` table."""

    def __init__(self, source: Engine, match_by: MatchBy = "merchant_id") -> None:
        self.source = source
        self.match_by = match_by

    def _program_id(self, customer: PlatformCustomer) -> int | None:
        if self.match_by == "email":
            if not customer.email or not customer.email.strip():
                return None
            found = customer_ids_by_email(self.source, customer.email)
            return found[0] if found else None
        wanted = _as_id(
            customer.merchant_id if self.match_by == "merchant_id" else customer.platform_id
        )
        if wanted is None:
            return None
        return wanted if load_customers(self.source, [wanted]) else None

    def resolve(self, platform: str, customer: PlatformCustomer) -> Recipient:
        program_id = self._program_id(customer)
        if program_id is not None:
            return Recipient(program_id)
        identifiers = {"email": customer.email.strip()} if customer.email else {}
        return Recipient(unmatched_id(platform, customer), identifiers)
