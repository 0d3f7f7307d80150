"""Small SQL helpers shared by the store's repositories."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

import orjson
from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Float,
    LargeBinary,
    Numeric,
    Table,
    Text,
    any_,
    bindparam,
    func,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection

from attentive_sync.store.db import json_text
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

    One condition with one parameter whatever the count, so the statement is compiled
    once and no expression object is built per value (on a hot path those cost more than
    the query): PostgreSQL gets an array (``= ANY``), SQLite a JSON array it reads as a
    table (``IN (SELECT value FROM json_each(?))``), whose values still probe the index.
    """
    values = list(values)
    if not values:
        return
    dialect = conn.dialect.name
    yield member_param(dialect, column, None, member_values(dialect, values))


_UNBOUND: Any = object()


def member_param(
    dialect: str, column: ColumnElement[Any], name: str | None, value: Any = _UNBOUND
) -> ColumnElement[bool]:
    """``column IN`` one parameter: named and left unbound, for a statement built once per
    dialect (one built per call costs more to build and key than the query on a hot path),
    then bound to ``member_values(dialect, values)``; or bound to ``value`` already."""
    given = {} if value is _UNBOUND else {"value": value}
    if dialect == "postgresql":
        return column == any_(bindparam(name, type_=ARRAY(column.type), **given))
    listed = func.json_each(bindparam(name, type_=Text, **given)).table_valued("value")
    return column.in_(select(listed.c.value))


def member_values(dialect: str, values: Iterable[Any]) -> Any:
    """What ``member_param`` is bound to."""
    values = list(values)
    return values if dialect == "postgresql" else json_text(values)


# A list of at least SPAN_MIN ids whose span is under SPAN_SPREAD times their count (a page
# of a keyset walk, a batch of one) is read as one range.
SPAN_MIN = 64
SPAN_SPREAD = 16


def span_of(ids: Sequence[int], spread: int = SPAN_SPREAD) -> tuple[int, int] | None:
    """(lowest, highest) of many ids close together (spanning under ``spread`` times their
    count), else None.

    One range scan of an index reads rows for all of them in one statement, where probing
    each id costs per id; the range may also hold rows of ids not asked for, so whoever
    reads it keeps only the ids asked for.
    """
    if len(ids) < SPAN_MIN:
        return None
    low, high = min(ids), max(ids)
    return (low, high) if high - low < spread * len(ids) else None


def ids_among(
    conn: Connection, column: ColumnElement[Any], ids: Sequence[int]
) -> Iterator[ColumnElement[bool]]:
    """Like ``member_of`` for integer ids, but close-together ids become one range: the
    rows found may include ids not in ``ids`` (filter them out)."""
    span = span_of(ids)
    if span is not None:
        yield column.between(*span)
        return
    yield from member_of(conn, column, ids)


def insert_rows(
    conn: Connection,
    table: Table,
    rows: Sequence[Sequence[Any]],
    columns: Sequence[str],
    *,
    upsert: tuple[Sequence[str], Sequence[str]] | None = None,
    unless_older: str | None = None,
) -> None:
    """Insert ``rows`` (values in ``columns`` order); ``upsert`` = (conflict columns,
    columns to update) turns a conflict into an update of those columns, skipped where the
    stored ``unless_older`` column is later than the new one.

    On SQLite the rows go straight to the driver's ``executemany`` after each column's own
    bind conversion (the same one SQLAlchemy applies, so what is stored is identical):
    SQLAlchemy's per-row parameter handling costs several times the insert itself on the
    hot path. PostgreSQL takes the ordinary statement.
    """
    if not rows:
        return
    if conn.dialect.name != "sqlite":
        records = [dict(zip(columns, row, strict=True)) for row in rows]
        if upsert is None:
            conn.execute(table.insert(), records)
            return
        keys, updated = upsert
        stmt = upsert_insert(conn, table)
        newer = None
        if unless_older is not None:
            newer = stmt.excluded[unless_older] >= table.c[unless_older]
        stmt = stmt.on_conflict_do_update(
            index_elements=[table.c[k] for k in keys],
            set_={name: stmt.excluded[name] for name in updated},
            where=newer,
        )
        conn.execute(stmt, records)
        return
    processors = [table.c[name].type._cached_bind_processor(conn.dialect) for name in columns]
    converting = [(n, p) for n, p in enumerate(processors) if p is not None]
    converted: list[Sequence[Any]] = list(rows)
    if converting:
        # Column by column; a value repeated down a column (a hold's end, a batch's
        # timestamp, the audience flags a page's records share) is converted once.
        by_column = [list(values) for values in zip(*rows, strict=True)]
        for n, process in converting:
            values = by_column[n]
            first = values[0]
            if all(value is first for value in values):
                by_column[n] = [process(first)] * len(values)
            else:
                by_column[n] = _converted_once_each(values, process)
        converted = list(zip(*by_column, strict=True))
    conflict = ""
    if upsert is not None:
        keys, updated = upsert
        sets = ", ".join(f"{name} = excluded.{name}" for name in updated)
        conflict = f" ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {sets}"
        if unless_older is not None:
            conflict += f" WHERE excluded.{unless_older} >= {table.name}.{unless_older}"
    into = f"INSERT INTO {table.name} ({', '.join(columns)})"
    document = _as_json_rows(table, columns, converted)
    if document is None:
        places = ", ".join("?" * len(columns))
        conn.exec_driver_sql(f"{into} VALUES ({places}){conflict}", converted)
        return
    # One JSON parameter read as a table: the driver binds and steps one statement, not
    # one per row (2-3 times less CPU for a batch of rows). WHERE true lets SQLite parse
    # an ON CONFLICT after a SELECT.
    picked = ", ".join(f"json_extract(value, '$[{n}]')" for n in range(len(columns)))
    sql = f"{into} SELECT {picked} FROM json_each(?) WHERE true{conflict}"
    conn.exec_driver_sql(sql, (document,))


def _converted_once_each(values: list[Any], process: Callable[[Any], Any]) -> list[Any]:
    """``process`` of each value, once per distinct object (the values are alive for the
    whole call, so an object's id names it)."""
    done: dict[int, Any] = {}
    out = []
    for value in values:
        key = id(value)
        if key not in done:
            done[key] = process(value)
        out.append(done[key])
    return out


# Only values JSON carries exactly (text, integers, null) go through a JSON document; the
# rest (a float's last digit, bytes, a value the driver adapts) is bound row by row.
# Integers past 2**53 (which SQLite's JSON reader may take as REAL) and strings holding a
# NUL (which ``json_extract`` cuts there) are bound row by row too.
_JSON_EXACT = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
_JSON_EXACT |= orjson.OPT_PASSTHROUGH_SUBCLASS | orjson.OPT_STRICT_INTEGER


def _as_json_rows(table: Table, columns: Sequence[str], rows: list[Sequence[Any]]) -> str | None:
    if not _json_exact_columns(table, tuple(columns)):
        return None
    try:
        document = orjson.dumps(rows, option=_JSON_EXACT).decode()
    except TypeError:
        return None
    return None if "\\u0000" in document else document


@functools.lru_cache(maxsize=256)
def _json_exact_columns(table: Table, columns: tuple[str, ...]) -> bool:
    """No column of these holds a float or a binary value (bound as such)."""
    for name in columns:
        kind = table.c[name].type
        if isinstance(kind, Float | Numeric | LargeBinary):
            return False
    return True
