"""Readers over the reference schema, used by the flows.

Every reader takes an ``Engine`` or a ``Connection``: with an engine each call (and each
page of a paginated read) borrows a connection only for as long as its query runs, so a
caller that spends minutes sending a page to Attentive holds no database connection.

Large reads are keyset-paginated (``WHERE id > :after ORDER BY id LIMIT :n``) rather than
OFFSET-paginated: every page costs one index range scan no matter how deep the walk is, and
the last id of a page is a checkpoint a restarted run resumes from.

Customer rows are read value by value: a date or timestamp the database hands over as
text that is not one (SQLite stores text; a view may expose a text column) becomes an
``UnreadableValue`` in its column instead of failing the whole read. ``check_readable`` is
what a mapping calls to refuse a row whose fields it reads hold one.
"""

from __future__ import annotations

import heapq
import itertools
import operator
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    Column,
    ColumnElement,
    Connection,
    Engine,
    Select,
    bindparam,
    func,
    select,
    type_coerce,
)
from sqlalchemy.engine import Dialect, processors
from sqlalchemy.types import NullType, TypeDecorator

from attentive_sync.domain.errors import BAD_SOURCE_VALUE, RecordRejected
from attentive_sync.sources.errors import UnreadableValue
from attentive_sync.sources.schema import (
    audience_members,
    audiences,
    customers,
    points_ledger,
)
from attentive_sync.store import _sql

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


def _among(column: Column[Any], chunk: list[int]) -> ColumnElement[bool]:
    """``column IN chunk`` as one expanding parameter (no expression object per id)."""
    return column.in_(bindparam(None, chunk, type_=column.type, expanding=True))


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


def iter_membership_pages(
    bind: Bind, audiences: Iterable[str], after_customer_id: int = 0, page_size: int = 1000
) -> Iterator[list[tuple[int, tuple[str, ...]]]]:
    """Yield, in ascending pages of ``page_size`` customers, each customer who is in any of
    ``audiences`` (after ``after_customer_id``) with those of ``audiences`` they are in
    (sorted): one entry per customer, however many of the audiences hold them.

    Each audience is walked by its own keyset pages and the walks are merged by customer
    id, so every page is a handful of index range scans and memory holds a page per
    audience. Everything up to a yielded page's last customer has been read.
    """
    if page_size < 1:
        raise ValueError(f"page_size must be at least 1, got {page_size}")
    walks = [
        _tagged(slug, iter_audience_member_pages(bind, slug, after_customer_id, page_size))
        for slug in sorted(set(audiences))
    ]
    page: list[tuple[int, tuple[str, ...]]] = []
    for cid, group in itertools.groupby(heapq.merge(*walks), key=operator.itemgetter(0)):
        page.append((cid, tuple(slug for _, slug in group)))
        if len(page) == page_size:
            yield page
            page = []
    if page:
        yield page


def _tagged(slug: str, pages: Iterator[list[int]]) -> Iterator[tuple[int, str]]:
    for ids in pages:
        for cid in ids:
            yield cid, slug


def count_customers_in(bind: Bind, audiences: Iterable[str]) -> int:
    """How many customers are in at least one of ``audiences``."""
    m = audience_members.c
    stmt = select(func.count(func.distinct(m.customer_id))).where(
        m.audience_slug.in_(sorted(set(audiences)))
    )
    with _connected(bind) as conn:
        return int(conn.scalar(stmt) or 0)


def audience_slugs(bind: Bind) -> list[str]:
    """The slugs of the audiences the program defines, sorted."""
    with _connected(bind) as conn:
        return list(conn.scalars(select(audiences.c.slug).order_by(audiences.c.slug)))


def load_customers(
    bind: Bind, ids: Iterable[int], only: Iterable[str] | None = None
) -> list[dict[str, Any]]:
    """Profile rows for ``ids`` (ascending by id; unknown ids are simply absent); with
    ``only``, just those columns (and ``customer_id``): a hot path reads what it maps.

    Values are as stored: ``phone`` raw, ``favorite_categories`` JSON array text. A date or
    timestamp that cannot be read is an ``UnreadableValue`` in its column; this never raises
    for one bad value.
    """
    rows: list[dict[str, Any]] = []
    wanted = None if only is None else {"customer_id", *only}
    with _connected(bind) as conn:
        readers = {
            name: read
            for name, read in _typed_readers(conn.dialect).items()
            if wanted is None or name in wanted
        }
        # Typed columns come back raw (no result processing), to be read one value at a time.
        columns = [
            type_coerce(c, NullType()).label(c.name) if c.name in readers else c
            for c in customers.c
            if wanted is None or c.name in wanted
        ]
        names = [c.name for c in columns]
        key = names.index("customer_id")
        base = select(*columns).order_by(customers.c.customer_id)
        asked = sorted(set(ids))
        for condition, keep in _id_conditions(customers.c.customer_id, asked):
            # Fetched whole: a page's rows, and row-by-row fetching cost more than reading.
            for raw in conn.execute(base.where(condition)).all():
                if keep is not None and raw[key] not in keep:
                    continue
                row = dict(zip(names, raw, strict=True))
                for name, read in readers.items():
                    if row[name] is not None:
                        row[name] = read(row[name])
                rows.append(row)
    return rows


def _id_conditions(
    column: Column[Any], ids: list[int]
) -> Iterator[tuple[ColumnElement[bool], set[int] | None]]:
    """Conditions that together select ``ids`` (sorted, unique), each with the ids to keep
    of what it finds (None: all). Ids that fill most of their span (a page of an audience
    most customers are in) are one range scan; others are IN lists."""
    if (span := _sql.span_of(ids, spread=2)) is not None:
        yield column.between(*span), set(ids)
        return
    for chunk in _chunks(ids):
        yield _among(column, chunk), None


def check_readable(row: Mapping[str, Any], fields: Collection[str]) -> None:
    """Refuse a row if a field the caller reads holds an ``UnreadableValue``.

    Raises ``RecordRejected(bad_source_value)`` naming each such column and what its value
    is not, never the value itself. Fields the caller does not read are not looked at, so a
    row with a bad value in a column nobody maps is sent as usual.
    """
    for field in fields:
        if isinstance(row.get(field), UnreadableValue):
            break
    else:
        return  # the usual row: one look per field, nothing built
    bad = sorted(
        (value.column, value.reason)
        for field in fields
        if isinstance(value := row.get(field), UnreadableValue)
    )
    if bad:
        detail = "; ".join(f"column {column}: {reason}" for column, reason in bad)
        raise RecordRejected(BAD_SOURCE_VALUE, detail)


_Reader = Callable[[Any], Any]
# SQLAlchemy's own text -> date/time conversions (what its SQLite dialect reads with).
_FROM_TEXT: dict[type, tuple[_Reader, str]] = {
    date: (processors.str_to_date, "not a valid date"),
    datetime: (processors.str_to_datetime, "not a valid timestamp"),
}
_READERS: dict[tuple[str, str], dict[str, _Reader]] = {}


def _typed_readers(dialect: Dialect) -> dict[str, _Reader]:
    """Column name -> value reader, for the customers columns whose type is not text."""
    key = (dialect.name, dialect.driver)
    if key not in _READERS:
        _READERS[key] = {
            c.name: _value_reader(c, dialect)
            for c in customers.c
            if not c.primary_key and _python_type(c) in _FROM_TEXT
        }
    return _READERS[key]


def _python_type(column: Column[Any]) -> type | None:
    """The Python type a column's values read as (a decorated type's, through its impl)."""
    kind = column.type
    if isinstance(kind, TypeDecorator):
        kind = kind.impl_instance
    try:
        return kind.python_type
    except NotImplementedError:
        return None


def _value_reader(column: Column[Any], dialect: Dialect) -> _Reader:
    """A reader applying the column type's own result conversion on ``dialect`` to one raw
    value; a value it cannot convert becomes an ``UnreadableValue``.

    SQLite hands dates over as text and the type's SQLite conversion parses it. Other
    databases hand over date objects, except from a text column (a view): such text is
    parsed with SQLAlchemy's text conversion first, then given to the type's conversion.
    """
    python_type = _python_type(column)
    assert python_type is not None
    from_text, reason = _FROM_TEXT[python_type]
    convert = column.type.dialect_impl(dialect).result_processor(dialect, None)
    parse_text = dialect.name != "sqlite"
    name = column.name

    def read(raw: Any) -> Any:
        try:
            value = from_text(raw) if parse_text and isinstance(raw, str) else raw
            if convert is not None:
                value = convert(value)
            if not isinstance(value, python_type):
                return UnreadableValue(name, reason)
            return value
        except (ValueError, TypeError, AttributeError, OverflowError):
            return UnreadableValue(name, reason)

    return read


def points_balances(bind: Bind, ids: Iterable[int]) -> dict[int, int]:
    """Points balance per customer: the sum of approved entries; 0 for ids with none."""
    wanted = set(ids)
    balances = dict.fromkeys(wanted, 0)
    total = func.sum(points_ledger.c.points)
    with _connected(bind) as conn:
        for chunk in _chunks(wanted):
            query = (
                select(points_ledger.c.customer_id, total)
                .where(_among(points_ledger.c.customer_id, chunk))
                .where(points_ledger.c.status == "approved")
                .group_by(points_ledger.c.customer_id)
            )
            balances.update({cid: int(points) for cid, points in conn.execute(query)})
    return balances


def members_among(bind: Bind, audience: str, customer_ids: Iterable[int]) -> set[int]:
    """Which of ``customer_ids`` are in ``audience`` now."""
    m = audience_members.c
    found: set[int] = set()
    wanted = sorted(set(customer_ids))
    with _connected(bind) as conn:
        if _sql.span_of(wanted) is not None:
            # Many ids close together (a page of a keyset walk): one range of the
            # audience's index holds few members beyond them.
            span = m.customer_id.between(wanted[0], wanted[-1])
            query = select(m.customer_id).where(m.audience_slug == audience, span)
            return _ids(conn, query).intersection(wanted)
        for chunk in _chunks(wanted):
            query = select(m.customer_id).where(
                m.audience_slug == audience, _among(m.customer_id, chunk)
            )
            found.update(_ids(conn, query))
    return found


def _ids(conn: Connection, query: Select[tuple[int]]) -> set[int]:
    """The integer ids ``query`` selects, from the driver's own rows: a send check reads
    thousands, and building a result row for each cost more than the query itself."""
    result = conn.execute(query)
    try:
        return {row[0] for row in result.cursor.fetchall()}
    finally:
        result.close()


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
