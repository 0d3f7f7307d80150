"""The seed: deterministic, realistic in the ways the engine must cope with, and guarded."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from datetime import datetime, timedelta, timezone

import phonenumbers
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select

from attentive_sync.domain.loyalty.rewards import UNSUPPORTED_REWARD_KINDS
from attentive_sync.sources import SeedError
from attentive_sync.sources._people import IMPOSSIBLE_PHONES
from attentive_sync.sources.schema import (
    REFERENCE_TABLES,
    audience_members,
    customers,
    points_ledger,
    rewards,
)
from attentive_sync.sources.seed import SeedReport, months_before, seed_program
from attentive_sync.store.db import init_db, make_engine
from tests.sources.conftest import CUSTOMERS, NOW

PHONE_FAMILIES = {
    "e164": r"\+1\d{10}",
    "national_parens": r"\(\d{3}\) \d{3}-\d{4}",
    "dashes": r"\d{3}-\d{3}-\d{4}",
    "dots": r"\d{3}\.\d{3}\.\d{4}",
    "spaces": r"\d{3} \d{3} \d{4}",
    "digits": r"\d{10}",
    "trunk_prefix": r"1-\d{3}-\d{3}-\d{4}",
    "plus_spaced": r"\+1 \d{3} \d{3} \d{4}",  # US and Canada
    "uk": r"\+44 7\d{3} \d{6}",
    "au": r"\+61 4\d{2} \d{3} \d{3}",
}
IDENTIFIERS = ("phone", "email", "client_user_id", "shopify_id", "klaviyo_id")


def _family(phone: str) -> str:
    if phone in IMPOSSIBLE_PHONES:
        return "impossible"
    return next(name for name, rx in PHONE_FAMILIES.items() if re.fullmatch(rx, phone))


def _digest(engine: Engine) -> str:
    digest = hashlib.sha256()
    with engine.connect() as conn:
        for table in REFERENCE_TABLES:
            for row in conn.execute(select(table).order_by(*table.primary_key.columns)):
                digest.update(repr(tuple(row)).encode())
    return digest.hexdigest()


def _seeded(tmp_path, name: str, seed: int, customers: int = 10_500, **kwargs) -> Engine:
    url = f"sqlite:///{tmp_path / name}"
    init_db(url)
    engine = make_engine(url)
    seed_program(engine, customers, seed, now=NOW, **kwargs)
    return engine


def test_same_seed_same_rows_however_committed_and_another_seed_other_rows(tmp_path) -> None:
    first = _seeded(tmp_path, "a.db", seed=11)
    # One transaction per chunk: also proves every transaction after the first is real.
    again = _seeded(tmp_path, "b.db", seed=11, chunks_per_commit=1)
    other = _seeded(tmp_path, "c.db", seed=12)
    try:
        assert _digest(first) == _digest(again)
        assert _digest(first) != _digest(other)
    finally:
        for engine in (first, again, other):
            engine.dispose()


def test_every_phone_notation_appears_and_all_but_the_impossible_are_valid(engine: Engine) -> None:
    with engine.connect() as conn:
        phones = list(conn.scalars(select(customers.c.phone).where(customers.c.phone.is_not(None))))
    families = Counter(_family(p) for p in phones)
    assert set(families) == {*PHONE_FAMILIES, "impossible"}
    for phone in phones:
        parsed = phonenumbers.parse(phone, "US") if _family(phone) != "impossible" else None
        if parsed is not None:
            assert phonenumbers.is_valid_number(parsed), phone


def test_some_customers_have_no_identifier_at_all(engine: Engine) -> None:
    nothing = [customers.c[name].is_(None) for name in IDENTIFIERS]
    with engine.connect() as conn:
        anonymous = conn.scalar(select(func.count()).where(*nothing))
    assert 0.01 * CUSTOMERS < anonymous < 0.04 * CUSTOMERS


def test_rewards_cover_every_kind_including_unsendable_disabled_and_out_of_stock(
    engine: Engine,
) -> None:
    with engine.connect() as conn:
        rows = conn.execute(select(rewards)).mappings().all()
    assert {r["kind"] for r in rows} >= UNSUPPORTED_REWARD_KINDS | {"discount_voucher", "custom"}
    assert any(not r["enabled"] for r in rows) and any(not r["in_stock"] for r in rows)
    assert any(not r["actionable"] for r in rows)


def test_the_ledger_is_about_ten_entries_a_customer_within_13_months(
    seeded: tuple[Engine, SeedReport],
) -> None:
    engine, report = seeded
    ledger = points_ledger.c
    with engine.connect() as conn:
        oldest, newest = conn.execute(
            select(func.min(ledger.created_at), func.max(ledger.created_at))
        ).one()
        statuses = dict(
            conn.execute(select(ledger.status, func.count()).group_by(ledger.status)).all()
        )
        old_pending = conn.scalar(
            select(func.count()).where(
                ledger.status == "pending", ledger.created_at < NOW - timedelta(days=30)
            )
        )
        approved_without_time = conn.scalar(
            select(func.count()).where(
                (ledger.status == "approved") == ledger.approved_at.is_(None)
            )
        )
    assert 8 < report.ledger_entries / report.customers < 12
    assert months_before(NOW, 13) <= oldest and newest <= NOW
    assert set(statuses) == {"pending", "approved", "void"}
    assert old_pending == 0 and approved_without_time == 0


def test_last_activity_is_the_last_approved_earn_or_spend(engine: Engine) -> None:
    ledger = points_ledger.c
    last = (
        select(ledger.customer_id, func.max(ledger.created_at).label("at"))
        .where(ledger.status == "approved", ledger.kind.in_(["earned", "spent"]))
        .group_by(ledger.customer_id)
        .subquery()
    )
    query = select(customers.c.last_activity_at, last.c.at).join_from(
        customers, last, customers.c.customer_id == last.c.customer_id, isouter=True
    )
    with engine.connect() as conn:
        pairs = conn.execute(query).all()
    assert all(profile == computed for profile, computed in pairs)


def test_audiences_overlap_and_one_is_empty(engine: Engine) -> None:
    with engine.connect() as conn:
        per_customer = Counter(conn.scalars(select(audience_members.c.customer_id)))
        sizes = dict(
            conn.execute(
                select(audience_members.c.audience_slug, func.count()).group_by("audience_slug")
            ).all()
        )
    assert max(per_customer.values()) >= 3
    assert set(sizes) == {"vip", "churn_risk", "newsletter", "big_spenders"}


def test_favorite_categories_are_json_arrays(engine: Engine) -> None:
    with engine.connect() as conn:
        values = list(conn.scalars(select(customers.c.favorite_categories).limit(500)))
    parsed = [json.loads(v) for v in values if v is not None]
    assert parsed and all(isinstance(v, list) for v in parsed)
    assert any(len(v) >= 2 for v in parsed) and None in values


def test_seeding_twice_is_refused_unless_replacing(tmp_path) -> None:
    engine = _seeded(tmp_path, "twice.db", seed=1, customers=300)
    try:
        with pytest.raises(SeedError, match="--replace"):
            seed_program(engine, 300, 1, now=NOW)
        before = _digest(engine)
        report = seed_program(engine, 300, 1, now=NOW, replace=True)
        assert report.customers == 300 and _digest(engine) == before
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"customers": 0, "seed": 1, "now": NOW}, "at least 1"),
        ({"customers": 5, "seed": 1, "now": datetime(2025, 1, 1)}, "timezone"),
    ],
)
def test_bad_seed_requests_are_refused(tmp_path, kwargs: dict, message: str) -> None:
    url = f"sqlite:///{tmp_path / 'bad.db'}"
    init_db(url)
    engine = make_engine(url)
    try:
        with pytest.raises(SeedError, match=message):
            seed_program(engine, **kwargs)
    finally:
        engine.dispose()


@given(
    moment=st.datetimes(
        datetime(1990, 1, 1), datetime(2100, 1, 1), timezones=st.just(timezone.utc)
    ),
    months=st.integers(0, 240),
)
def test_months_before_keeps_the_day_unless_the_month_is_shorter(
    moment: datetime, months: int
) -> None:
    earlier = months_before(moment, months)
    assert (moment.year * 12 + moment.month) - (earlier.year * 12 + earlier.month) == months
    assert earlier.day == moment.day or (earlier.day < moment.day and earlier.day >= 28)
    assert earlier.time() == moment.time() and earlier.tzinfo == moment.tzinfo
