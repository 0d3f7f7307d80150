"""Readers over the reference schema, used by the flows.

Every reader takes an ``Engine`` or a ``Connection``: with an engine each call (and each
page of a paginated read) borrows a connection only for as long as its query runs, so a
caller that spends minutes sending a page to Attentive holds no database connection.

Large reads are keyset-paginated (``WHERE id > :after ORDER BY id LIMIT :n``) rather than
OFFSET-paginated: every page costs one index range scan no matter how deep the walk is, and
the last id of a page is a checkpoint a restarted run resumes from.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Column, Connection, Engine, Select, func, select

from attentive_sync.sources.schema import (
    audience_members,
    audiences,
    customers,
    points_ledger,
)

Bind = Engine | Connection

# Far below SQLite's bound-parameter ceiling (32766) and PostgreSQL's (65535), and small
# enough that an IN list stays a cheap index probe.
_IN_CHUNK = 900


@contextmanager
def _connected(bind: Bind) -> Iterator[Connection]:
    if isinstance(bind, Connection):
        yield bind
    else:
        with bind.connect() as conn:
            yield conn


def _chunks(ids: Iterable[int]) -> Iterator[list[int]]:
    unique = sorted(set(ids))
    for start in range(0, len(unique), _IN_CHUNK):
        yield unique[start : start + _IN_CHUNK]


def _keyset_pages(
    bind: Bind, query: Select[Any], key: Column[Any], after: int, page_size: int
) -> Iterator[list[int]]:
    if page_size < 1:
        raise ValueError(f"page_size must be at least 1, got {page_size}")
    while True:
        with _connected(bind) as conn:
            page = list(conn.scalars(query.where(key > after).order_by(key).limit(page_size)))
        if not page:
            return
        yield page
        if len(page) < page_size:
            return
        after = page[-1]


def iter_audience_member_pages(
    bind: Bind, audience: str, after_customer_id: int = 0, page_size: int = 1000
) -> Iterator[list[int]]:
    """Yield the audience's member ids in ascending pages, starting after ``after_customer_id``."""
    key = audience_members.c.customer_id
    query = select(key).where(audience_members.c.audience_slug == audience)
    return _keyset_pages(bind, query, key, after_customer_id, page_size)


def audience_slugs(bind: Bind) -> list[str]:
    """The slugs of the audiences the program defines, sorted."""
    with _connected(bind) as conn:
        return list(conn.scalars(select(audiences.c.slug).order_by(audiences.c.slug)))


def load_customers(bind: Bind, ids: Iterable[int]) -> list[dict[str, Any]]:
    """Profile rows for ``ids`` (ascending by id; unknown ids are simply absent).

    Values are as stored: ``phone`` raw, ``favorite_categories`` JSON array text.
    """
    rows: list[dict[str, Any]] = []
    with _connected(bind) as conn:
        for chunk in _chunks(ids):
            query = (
                select(customers)
                .where(customers.c.customer_id.in_(chunk))
                .order_by(customers.c.customer_id)
            )
            rows.extend(dict(r) for r in conn.execute(query).mappings())
    return rows


def points_balances(bind: Bind, ids: Iterable[int]) -> dict[int, int]:
    """Points balance per customer: the sum of approved entries; 0 for ids with none."""
    wanted = set(ids)
    balances = dict.fromkeys(wanted, 0)
    total = func.sum(points_ledger.c.points)
    with _connected(bind) as conn:
        for chunk in _chunks(wanted):
            query = (
                select(points_ledger.c.customer_id, total)
                .where(points_ledger.c.customer_id.in_(chunk))
                .where(points_ledger.c.status == "approved")
                .group_by(points_ledger.c.customer_id)
            )
            balances.update({cid: int(points) for cid, points in conn.execute(query)})
    return balances


def members_among(bind: Bind, audience: str, customer_ids: Iterable[int]) -> set[int]:
    """Which of ``customer_ids`` are in ``audience`` now."""
    m = audience_members.c
    found: set[int] = set()
    with _connected(bind) as conn:
        for chunk in _chunks(customer_ids):
            query = select(m.customer_id).where(
                m.audience_slug == audience, m.customer_id.in_(chunk)
            )
            found.update(conn.scalars(query))
    return found


def is_member(bind: Bind, audience: str, customer_id: int) -> bool:
    """Whether ``customer_id`` is in ``audience`` now (a retried backfill re-checks this)."""
    m = audience_members.c
    query = select(m.customer_id).where(m.audience_slug == audience, m.customer_id == customer_id)
    with _connected(bind) as conn:
        return conn.execute(query).first() is not None


def customer_ids_by_email(bind: Bind, email: str) -> list[int]:
    """Ids of the customers whose email is ``email``, compared trimmed and case-folded
    (the way the engine normalises emails); ascending. Without an index on
    ``lower(trim(email))`` this is a scan of the customers table."""
    wanted = email.strip().lower()
    column = func.lower(func.trim(customers.c.email))
    query = (
        select(customers.c.customer_id).where(column == wanted).order_by(customers.c.customer_id)
    )
    with _connected(bind) as conn:
        return list(conn.scalars(query))
