"""Loyalty profile attributes kept current in Attentive: ``{prefix}_tier`` and friends.

Attentive fixes a custom attribute's type the first time it sees a value, so each attribute
here always carries the one type the table names; an unknown value is left out rather than
sent as null or as a placeholder of another type.
"""

from __future__ import annotations

import math
import re
from typing import Literal, NamedTuple

from attentive_sync.domain.loyalty.catalogue import DEFAULT_PROGRAM, check_program_name


class ProfileAttribute(NamedTuple):
    suffix: str
    type: Literal["string", "number"]
    meaning: str


PROFILE_ATTRIBUTES: tuple[ProfileAttribute, ...] = (
    ProfileAttribute("tier", "string", "the customer's current loyalty tier name"),
    ProfileAttribute("points_balance", "number", "spendable points the customer holds now"),
    ProfileAttribute(
        "insights_segment", "string", "the customer's insights segment (Loyal, At Risk, ...)"
    ),
)


def attribute_prefix(program: str = DEFAULT_PROGRAM) -> str:
    """``Acme Rewards`` -> ``acme_rewards``: lowercase words joined by underscores."""
    words = re.findall(r"[^\W_]+", check_program_name(program).casefold())
    return "_".join(words)


def attribute_names(program: str = DEFAULT_PROGRAM) -> dict[str, str]:
    """Suffix -> full attribute name, e.g. ``tier`` -> ``loyalty_tier``."""
    prefix = attribute_prefix(program)
    return {attribute.suffix: f"{prefix}_{attribute.suffix}" for attribute in PROFILE_ATTRIBUTES}


def _text(name: str, value: str | None) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{name} must be text")
    return value.strip() or None


def _number(value: float | None) -> int | float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("points balance must be a number")
    if not math.isfinite(value):
        raise ValueError("points balance must be a finite number")
    return int(value) if float(value).is_integer() else float(value)


def profile_attributes(
    tier: str | None,
    balance: float | None,
    segment: str | None,
    *,
    program: str = DEFAULT_PROGRAM,
) -> dict[str, str | int | float]:
    """The attributes to write for one customer; unknown (None or blank) values are omitted."""
    names = attribute_names(program)
    values: dict[str, str | int | float | None] = {
        "tier": _text("tier", tier),
        "points_balance": _number(balance),
        "insights_segment": _text("insights segment", segment),
    }
    return {names[suffix]: value for suffix, value in values.items() if value is not None}
