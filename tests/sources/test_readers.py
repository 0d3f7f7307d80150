"""The readers against a seeded program, checked against plain SQL over the same rows."""

from __future__ import annotations

import math
from datetime import timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, event, select

from attentive_sync.sources import (
    audience_slugs,
    iter_audience_member_pages,
    load_customers,
    points_balances,
)
from attentive_sync.sources.loyalty import count_customers_in, iter_membership_pages
from attentive_sync.sources.schema import audience_members, points_ledger
from attentive_sync.sources.seed import AUDIENCES
from tests.sources.conftest import CUSTOMERS

FIXTURE_OK = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
# A walk covers at most this many pages past the cursor: a page of one customer walked over
# the whole program is thousands of queries and proves nothing a few dozen pages do not.
MAX_PAGES = 40


def _cursor(after: int, page_size: int) -> int:
    return max(after, CUSTOMERS - MAX_PAGES * page_size)


def _members(engine: Engine, slug: str) -> list[int]:
    query = select(audience_members.c.customer_id).where(audience_members.c.audience_slug == slug)
    with engine.connect() as conn:
        return sorted(conn.scalars(query))


@FIXTURE_OK
@given(
    slug=st.sampled_from(sorted(AUDIENCES)),
    page_size=st.integers(1, 3000),
    after=st.integers(0, CUSTOMERS),
)
def test_member_pages_cover_every_member_after_the_cursor_exactly_once(
    engine: Engine, slug: str, page_size: int, after: int
) -> None:
    after = _cursor(after, page_size)
    pages = list(iter_audience_member_pages(engine, slug, after, page_size))
    flat = [cid for page in pages for cid in page]
    assert flat == [cid for cid in _members(engine, slug) if cid > after]
    assert all(len(page) == page_size for page in pages[:-1])
    assert all(0 < len(page) <= page_size for page in pages)


@FIXTURE_OK
@given(
    slugs=st.lists(st.sampled_from(sorted(AUDIENCES)), min_size=1, max_size=4),
    page_size=st.integers(1, 700),
    after=st.integers(0, CUSTOMERS),
)
def test_membership_pages_hold_each_customer_once_with_all_their_audiences(
    engine: Engine, slugs: list[str], page_size: int, after: int
) -> None:
    after = _cursor(after, page_size)
    expected: dict[int, set[str]] = {}
    for slug in set(slugs):
        for cid in _members(engine, slug):
            expected.setdefault(cid, set()).add(slug)
    pages = list(iter_membership_pages(engine, slugs, after, page_size))
    flat = [entry for page in pages for entry in page]
    assert flat == [(cid, tuple(sorted(expected[cid]))) for cid in sorted(expected) if cid > after]
    assert all(len(page) == page_size for page in pages[:-1])
    assert all(0 < len(page) <= page_size for page in pages)
    assert count_customers_in(engine, slugs) == len(expected)


def test_membership_pages_refuse_an_empty_page(engine: Engine) -> None:
    with pytest.raises(ValueError, match="page_size"):
        next(iter_membership_pages(engine, ["vip"], page_size=0))


def test_each_page_is_one_bounded_query_and_no_connection_is_held_between_pages(
    engine: Engine,
) -> None:
    members = _members(engine, "newsletter")
    statements: list[str] = []

    def record(_conn, _cursor, statement, *_args) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        pages = iter_audience_member_pages(engine, "newsletter", page_size=500)
        first = next(pages)
        assert engine.pool.checkedout() == 0
        rest = list(pages)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(first) + sum(map(len, rest)) == len(members)
    assert len(selects) == math.ceil(len(members) / 500) + (len(members) % 500 == 0)
    assert all("customer_id >" in s and "LIMIT" in s.upper() for s in selects)


def test_pages_also_work_on_a_connection_and_for_empty_or_unknown_audiences(
    engine: Engine,
) -> None:
    with engine.connect() as conn:
        via_conn = [cid for page in iter_audience_member_pages(conn, "vip", 0, 97) for cid in page]
        assert list(iter_audience_member_pages(conn, "spring_preview")) == []
        assert list(iter_audience_member_pages(conn, "no_such_audience")) == []
    assert via_conn == _members(engine, "vip")


def test_page_size_must_be_positive(engine: Engine) -> None:
    with pytest.raises(ValueError, match="page_size"):
        next(iter_audience_member_pages(engine, "vip", page_size=0))


def test_audience_slugs_lists_every_defined_audience(engine: Engine) -> None:
    assert audience_slugs(engine) == sorted(AUDIENCES)


def test_load_customers_returns_known_ids_in_order_with_utc_times(engine: Engine) -> None:
    wanted = list(range(CUSTOMERS, 0, -7)) + [5, 5, CUSTOMERS + 10]
    rows = load_customers(engine, wanted)
    assert [r["customer_id"] for r in rows] == sorted(set(wanted) - {CUSTOMERS + 10})
    assert all(r["enrolled_at"].tzinfo == timezone.utc for r in rows)
    assert {"phone", "email", "tier", "favorite_categories", "date_of_birth"} <= rows[0].keys()
    assert load_customers(engine, []) == []


def _ledger(engine: Engine, ids: list[int]) -> list[tuple]:
    cols = points_ledger.c
    query = select(cols.customer_id, cols.points, cols.kind, cols.status, cols.created_at)
    with engine.connect() as conn:
        return list(conn.execute(query.where(cols.customer_id.in_(ids))))


def test_points_balances_sum_approved_entries_only(engine: Engine) -> None:
    ids = list(range(1, 1500, 3))
    expected = dict.fromkeys(ids, 0)
    for cid, points, _kind, status, _at in _ledger(engine, ids):
        expected[cid] += points if status == "approved" else 0
    balances = points_balances(engine, ids + [CUSTOMERS + 1])
    assert balances == {**expected, CUSTOMERS + 1: 0}
    assert min(balances.values()) >= 0
