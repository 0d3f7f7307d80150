"""Small SQL helpers shared by the store's repositories."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TypeVar

from sqlalchemy import BindParameter, ColumnElement, Table, any_, bindparam
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection

from attentive_sync.store.errors import StoreError

T = TypeVar("T")

# Rows per statement: far below SQLite's and PostgreSQL's bound-parameter limits even for
# the widest table, and large enough that round trips do not dominate.
CHUNK = 500


def upsert_insert(conn: Connection, table: Table) -> Any:
    """The dialect's INSERT, which unlike the generic one offers ON CONFLICT."""
    name = conn.dialect.name
    if name == "postgresql":
        return postgresql.insert(table)
    if name == "sqlite":
        return sqlite.insert(table)
    raise StoreError(f"the state store supports SQLite and PostgreSQL, not {name}")


def chunks(items: Iterable[T], size: int = CHUNK) -> Iterator[list[T]]:
    """Consecutive lists of at most ``size`` items."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def literal_in(name: str, values: Sequence[str]) -> BindParameter[Any]:
    """An IN list rendered as literals, so PostgreSQL can match the partial indexes on state
    even in a generic (reused) plan, where bound values would hide the predicate."""
    return bindparam(name, list(values), expanding=True, literal_execute=True)


def member_of(
    conn: Connection, column: ColumnElement[Any], values: Iterable[Any]
) -> Iterator[ColumnElement[bool]]:
    """Conditions that together say ``column IN values``, as few as the database allows.

    PostgreSQL gets one array parameter (``= ANY``): one short statement whatever the
    count, which the driver does not have to re-parse. SQLite has no arrays, so it gets
    chunks of bound parameters, each under its parameter limit.
    """
    values = list(values)
    if not values:
        return
    if conn.dialect.name == "postgresql":
        yield column == any_(bindparam(None, values, type_=ARRAY(column.type)))
        return
    for chunk in chunks(values):
        yield column.in_(chunk)
