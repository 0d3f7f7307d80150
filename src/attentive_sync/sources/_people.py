"""Believable customer identities for the demo and benchmark seed.

The values are deliberately messy in the ways real loyalty exports are: phone numbers in
every common notation (and some that can never be dialled), emails with stray case and
whitespace, customers with no usable identifier at all. The engine's identifier rules are
only tested if the data gives them something to reject.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

FIRST_NAMES = (
    "Olivia", "Liam", "Emma", "Noah", "Ava", "Elijah", "Sophia", "James", "Isabella", "Lucas",
    "Mia", "Mateo", "Amelia", "Benjamin", "Harper", "Levi", "Evelyn", "Henry", "Aria", "Leo",
    "Chloe", "Hiroshi", "Priya", "Aaliyah", "Diego", "Fatima", "Kwame", "Ingrid", "Chen", "Zoe",
    "Maya", "Omar", "Lena", "Rafael", "Nora", "Sven", "Aisha", "Jonah", "Camila", "Theo",
)  # fmt: skip
LAST_NAMES = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez",
    "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor",
    "Moore", "Jackson", "Martin", "Lee", "Nguyen", "Patel", "Kim", "O'Brien", "Okafor", "Silva",
    "Kowalski", "Schmidt", "Haddad", "Tanaka", "Rossi", "Dubois", "Ivanova", "Cohen", "Murphy",
)  # fmt: skip
EMAIL_DOMAINS = ("gmail.com", "yahoo.com", "outlook.com", "icloud.com", "hotmail.com", "aol.com")
CATEGORIES = ("shoes", "hats", "outerwear", "denim", "accessories", "bags", "kids", "sale")


@dataclass(frozen=True)
class Locale:
    """Where a customer lives: the places to draw from and how their phones are written."""

    country: str
    places: tuple[tuple[str, str, str], ...]  # (city, state, zip or postcode prefix)
    area_codes: tuple[str, ...]


US = Locale(
    "US",
    (
        ("San Francisco", "CA", "941"),
        ("New York", "NY", "100"),
        ("Chicago", "IL", "606"),
        ("Austin", "TX", "787"),
        ("Seattle", "WA", "981"),
        ("Miami", "FL", "331"),
        ("Denver", "CO", "802"),
        ("Boston", "MA", "021"),
        ("Atlanta", "GA", "303"),
        ("Portland", "OR", "972"),
        ("Phoenix", "AZ", "850"),
        ("Nashville", "TN", "372"),
    ),  # fmt: skip
    ("415", "212", "312", "512", "206", "305", "303", "617", "404", "503", "602", "615", "646"),
)
CA = Locale(
    "CA",
    (("Toronto", "ON", "M5V"), ("Vancouver", "BC", "V6B"), ("Montreal", "QC", "H2X")),
    ("416", "604", "514", "647", "778"),
)
GB = Locale(
    "GB", (("London", "ENG", "SW1A"), ("Manchester", "ENG", "M1"), ("Leeds", "ENG", "LS1")), ()
)
AU = Locale("AU", (("Sydney", "NSW", "2000"), ("Melbourne", "VIC", "3000")), ())
LOCALES = (US, CA, GB, AU)
LOCALE_WEIGHTS = (85, 5, 5, 5)


# Exchanges 200-999 minus the N11 service codes and the 555 fiction block, so every number
# is one that phonenumbers accepts as a real assignment.
_EXCHANGES = tuple(str(e) for e in range(200, 1000) if e % 100 != 11 and e != 555)

# UK mobiles from 07400-07599 and 07701-07999: 076xx is mostly pagers and unallocated,
# 07700 holds the numbers reserved for drama, 07911 is only partly allocated.
# Australian mobiles 0410-0439 are all allocated.
_UK_MOBILE = tuple(p for p in (*range(400, 600), *range(701, 1000)) if p != 911)


def _nanp(rng: random.Random, area_codes: tuple[str, ...]) -> tuple[str, str, str]:
    return rng.choice(area_codes), rng.choice(_EXCHANGES), f"{rng.randrange(10_000):04d}"


US_PHONE_FORMATS: dict[str, Callable[[str, str, str], str]] = {
    "e164": lambda a, e, n: f"+1{a}{e}{n}",
    "national_parens": lambda a, e, n: f"({a}) {e}-{n}",
    "dashes": lambda a, e, n: f"{a}-{e}-{n}",
    "dots": lambda a, e, n: f"{a}.{e}.{n}",
    "spaces": lambda a, e, n: f"{a} {e} {n}",
    "digits": lambda a, e, n: f"{a}{e}{n}",
    "trunk_prefix": lambda a, e, n: f"1-{a}-{e}-{n}",
    "plus_spaced": lambda a, e, n: f"+1 {a} {e} {n}",
}
US_FORMAT_WEIGHTS = (30, 20, 12, 8, 6, 10, 6, 8)
# Never valid anywhere: too short, or a local number with no area code.
IMPOSSIBLE_PHONES = ("5551234", "12", "555-0199", "0000000000", "1234")


def phone_for(rng: random.Random, locale: Locale) -> str:
    """A phone as a customer might have typed it for ``locale`` (about 3% undiallable)."""
    if rng.random() < 0.03:
        return rng.choice(IMPOSSIBLE_PHONES)
    if locale is GB:
        return f"+44 7{rng.choice(_UK_MOBILE)} {rng.randrange(1_000_000):06d}"
    if locale is AU:
        return f"+61 4{rng.randrange(10, 40)} {rng.randrange(1000):03d} {rng.randrange(1000):03d}"
    area, exchange, line = _nanp(rng, locale.area_codes)
    if locale is CA:
        return f"+1 {area} {exchange} {line}"
    fmt = rng.choices(list(US_PHONE_FORMATS.values()), weights=US_FORMAT_WEIGHTS)[0]
    return fmt(area, exchange, line)


def email_for(rng: random.Random, first: str, last: str) -> str:
    """An address as stored by a storefront: mostly clean, some with stray case or spaces."""
    local = rng.choice((f"{first}.{last}", f"{first[0]}{last}", f"{first}{last[:1]}"))
    suffix = str(rng.randrange(1, 999)) if rng.random() < 0.5 else ""
    local = local.lower().replace("'", "") + suffix
    roll = rng.random()
    if roll < 0.005:
        return f"{local}@"  # truncated by a form: never deliverable
    address = f"{local}@{rng.choice(EMAIL_DOMAINS)}"
    if roll < 0.05:
        return f"  {address.capitalize()} "
    return address


def _maybe(rng: random.Random, share: float, value: str) -> str | None:
    return value if rng.random() < share else None


def identity_for(rng: random.Random, customer_id: int, today: date) -> tuple[object, ...]:
    """The profile columns from ``phone`` to ``date_of_birth``, in table order.

    About 2% of customers have no identifier at all (they joined in store with a name only).
    """
    locale = rng.choices(LOCALES, weights=LOCALE_WEIGHTS)[0]
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    city, state, postcode = rng.choice(locale.places)
    anonymous = rng.random() < 0.02
    phone = None if anonymous else _maybe(rng, 0.85, phone_for(rng, locale))
    email = None if anonymous else _maybe(rng, 0.8, email_for(rng, first, last))
    client_user_id = None if anonymous else _maybe(rng, 0.6, f"cu_{customer_id:08d}")
    shopify_id = None if anonymous else _maybe(rng, 0.5, str(6_000_000_000_000 + customer_id))
    klaviyo_id = None if anonymous else _maybe(rng, 0.3, f"01H{rng.getrandbits(92):023X}")
    zip_code = postcode + (f"{rng.randrange(100):02d}" if locale is US else "")
    birthday = today - timedelta(days=rng.randrange(18 * 365, 80 * 365))
    return (
        phone, email, client_user_id, shopify_id, klaviyo_id, first, last,
        city, state, zip_code, locale.country, _maybe(rng, 0.7, birthday.isoformat()),
    )  # fmt: skip


def favorite_categories(rng: random.Random) -> str | None:
    """JSON array text, the shape an array-valued source column arrives in."""
    if rng.random() < 0.3:
        return None
    return json.dumps(sorted(rng.sample(CATEGORIES, rng.randrange(0, 4))))
