"""Loading the reference tables from CSV and Parquet files, without writing SQL.

Every table of the reference schema (``schema.metadata``) can be loaded, and a table added
to the schema loads without a change here: columns, types, keys and the order to fill the
tables in (parents first) all come from the SQLAlchemy metadata.

- A file names its table by its stem (``customers.csv`` -> ``customers``) unless one is given.
- A column the table does not have, a missing required column or an unknown table is a
  mistake in the file as a whole (``LoadError``): nothing of that file is loaded.
- A row whose value cannot be read as its column's type, that leaves a required column
  empty, or that the database refuses (an audience member of an unknown customer) costs
  that row alone: it is reported by its line number and column, never its value (which may
  be personal data), and the good rows are loaded.
- Loading is idempotent on primary keys: a row whose key exists replaces the columns the
  file carries, so loading the same file twice leaves one copy.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    Engine,
    Float,
    Integer,
    Numeric,
    Table,
    select,
)
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.types import TypeDecorator

from attentive_sync.sources import schema
from attentive_sync.sources.errors import SourceError
from attentive_sync.store import _sql

CHUNK_ROWS = 5_000
SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
_TRUE = {"true", "t", "yes", "y", "1"}
_FALSE = {"false", "f", "no", "n", "0"}


class LoadError(SourceError):
    """A file that cannot be loaded at all: unknown table, bad or missing column, unreadable."""


@dataclass(frozen=True)
class RowError:
    line: int
    message: str


@dataclass
class LoadResult:
    path: Path
    table: str
    rows: int = 0
    loaded: int = 0
    errors: list[RowError] = field(default_factory=list)


@dataclass(frozen=True)
class LoadPlan:
    """One file and the table it fills."""

    path: Path
    table: Table


def tables() -> dict[str, Table]:
    return dict(schema.metadata.tables)


def plan_load(files: Sequence[Path], table: str | None = None) -> list[LoadPlan]:
    """Which table each file fills, in the order the tables must be filled (parents first).

    Raises ``LoadError`` for a missing file, an unknown format or table, or two files for
    one table.
    """
    if table is not None and len(files) != 1:
        raise LoadError("--table names the table of a single file; give one file with it")
    known = tables()
    plans: dict[str, LoadPlan] = {}
    for path in files:
        if not path.is_file():
            raise LoadError(f"{path}: no such file")
        if path.suffix.lower() not in SUFFIXES:
            raise LoadError(f"{path}: not a .csv or .parquet file")
        name = table or path.stem
        if name not in known:
            raise LoadError(
                f"{path}: {name!r} is not a table of the reference schema "
                f"(tables: {', '.join(known)}); name the file after its table or use --table"
            )
        if name in plans:
            raise LoadError(f"{path} and {plans[name].path} both fill {name}")
        plans[name] = LoadPlan(path, known[name])
    order = [t.name for t in schema.metadata.sorted_tables]
    return sorted(plans.values(), key=lambda plan: order.index(plan.table.name))


def load_file(engine: Engine, plan: LoadPlan, chunk_rows: int = CHUNK_ROWS) -> LoadResult:
    """Load one file into its table; see the module docstring for what an error costs."""
    result = LoadResult(plan.path, plan.table.name)
    try:
        _load_chunks(engine, plan, chunk_rows, result)
    except LoadError as exc:
        if result.loaded:
            raise LoadError(f"{exc}; {result.loaded:,} row(s) before it were loaded") from exc
        raise
    result.errors.sort(key=lambda error: error.line)
    return result


def _load_chunks(engine: Engine, plan: LoadPlan, chunk_rows: int, result: LoadResult) -> None:
    loader: _Loader | None = None
    for header, rows in _read(plan.path, chunk_rows):
        if loader is None:
            loader = _Loader(plan.table, header, plan.path)
        good: dict[tuple[Any, ...], tuple[int, dict[str, Any]]] = {}
        for line, raw in rows:
            result.rows += 1
            try:
                row = loader.convert(raw)
            except ValueError as exc:
                result.errors.append(RowError(line, str(exc)))
                continue
            # The last row of a key wins, as it would across chunks.
            good[tuple(row.get(c) for c in loader.key)] = (line, row)
        loaded, errors = loader.write(engine, list(good.values()))
        result.loaded += loaded
        result.errors.extend(errors)


class _Loader:
    """Converts a file's rows to its table's types and upserts them."""

    def __init__(self, table: Table, header: Sequence[str], path: Path) -> None:
        unknown = [name for name in header if name not in table.c]
        if unknown:
            raise LoadError(
                f"{path}: column {unknown[0]!r} is not a column of {table.name} "
                f"(columns: {', '.join(table.c.keys())})"
            )
        missing = [c.name for c in table.columns if _required(c) and c.name not in header]
        if missing:
            raise LoadError(f"{path}: {table.name} needs the column(s) {', '.join(missing)}")
        self.table = table
        self.columns = [table.c[name] for name in header]
        self.key = [c.name for c in table.primary_key.columns]

    def convert(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        row = {}
        for column in self.columns:
            value = _convert(column, raw.get(column.name))
            if value is None and _required(column):
                raise ValueError(f"{column.name} is empty; {self.table.name} requires it")
            row[column.name] = value
        return row

    def write(
        self, engine: Engine, rows: list[tuple[int, dict[str, Any]]]
    ) -> tuple[int, list[RowError]]:
        """Upsert ``rows`` in one statement; if the database refuses it, row by row, so one
        refused row costs that row alone."""
        rows, errors = self._referenced(engine, rows)
        if not rows:
            return 0, errors
        try:
            with engine.begin() as conn:
                conn.execute(self._upsert(conn), [row for _, row in rows])
            return len(rows), errors
        except (IntegrityError, DataError):
            pass
        loaded = 0
        for line, row in rows:
            try:
                with engine.begin() as conn:
                    conn.execute(self._upsert(conn), [row])
                loaded += 1
            except (IntegrityError, DataError) as exc:
                errors.append(RowError(line, _refusal(exc)))
        return loaded, errors

    def _referenced(
        self, engine: Engine, rows: list[tuple[int, dict[str, Any]]]
    ) -> tuple[list[tuple[int, dict[str, Any]]], list[RowError]]:
        """Split off the rows whose foreign keys name no row of the parent table, with a
        reason that names the column (SQLite's own refusal names neither)."""
        errors: list[RowError] = []
        for key in self.table.foreign_keys:
            name, parent = key.parent.name, key.column
            if name not in {c.name for c in self.columns}:
                continue
            wanted = {row[name] for _, row in rows if row.get(name) is not None}
            found: set[Any] = set()
            with engine.connect() as conn:
                for part in _sql.chunks(sorted(wanted, key=str)):
                    found.update(conn.scalars(select(parent).where(parent.in_(part))))
            kept = []
            for line, row in rows:
                if row.get(name) is None or row[name] in found:
                    kept.append((line, row))
                else:
                    errors.append(RowError(line, f"{name} names no row of {parent.table.name}"))
            rows = kept
        return rows, errors

    def _upsert(self, conn: Any) -> Any:
        stmt = _sql.upsert_insert(conn, self.table)
        update = {c.name: stmt.excluded[c.name] for c in self.columns if not c.primary_key}
        if not update:
            return stmt.on_conflict_do_nothing(index_elements=self.key)
        return stmt.on_conflict_do_update(index_elements=self.key, set_=update)


def _required(column: Column[Any]) -> bool:
    return not column.nullable and column.server_default is None and column.default is None


def _refusal(exc: IntegrityError | DataError) -> str:
    """The database's reason, first line only, without the statement or its parameters."""
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
    return f"the database refused the row: {reason}"


def _kind(column: Column[Any]) -> type:
    sql_type = column.type
    if isinstance(sql_type, TypeDecorator):
        sql_type = sql_type.impl_instance
    for sql, python in (
        (Boolean, bool),
        (DateTime, datetime),
        (Date, date),
        (Integer, int),
        (Float, float),
        (Numeric, float),
    ):
        if isinstance(sql_type, sql):
            return python
    return str


def _missing(value: Any, kind: type) -> bool:
    """An empty cell is NULL. Text is loaded as it is (``"  "`` stays: the engine decides
    what a blank value means); in a typed column, blank text is NULL too."""
    if value is None or value is pd.NaT:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    if isinstance(value, str):
        return value == "" or (kind is not str and not value.strip())
    return False


def _convert(column: Column[Any], value: Any) -> Any:
    """``value`` as the column's Python type; raises ValueError naming the column, not the value."""
    kind = _kind(column)
    if _missing(value, kind):
        return None
    try:
        if kind is bool:
            return _boolean(value)
        if kind is int:
            return _integer(value)
        if kind is float:
            return float(value)
        if kind is datetime:
            return _timestamp(value)
        if kind is date:
            return _date(value)
    except (ValueError, TypeError, OverflowError):
        raise ValueError(f"{column.name} is not {_NAMES[kind]}") from None
    return value if isinstance(value, str) else str(value)


_NAMES = {
    bool: "true or false",
    int: "a whole number",
    float: "a number",
    datetime: "a date-time (ISO 8601, e.g. 2026-01-31T09:00:00Z; no zone means UTC)",
    date: "a date (YYYY-MM-DD)",
}


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(text)


def _integer(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("a boolean")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError("a fraction")
        return int(value)
    if isinstance(value, int):
        return value
    return int(str(value).strip())


def _timestamp(value: Any) -> datetime:
    moment = pd.Timestamp(value.strip() if isinstance(value, str) else value)
    if moment is pd.NaT:
        raise ValueError("no time")
    stamp = moment.to_pydatetime()
    return stamp.replace(tzinfo=timezone.utc) if stamp.tzinfo is None else stamp


def _date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, pd.Timestamp):
        return value.date()
    return date.fromisoformat(str(value).strip())


Rows = list[tuple[int, dict[str, Any]]]


def _read(path: Path, chunk_rows: int) -> Iterator[tuple[list[str], Rows]]:
    """``(header, [(line number, row), ...])`` chunk by chunk; CSV cells stay text (the
    loader converts them by column), Parquet values keep their types."""
    try:
        if SUFFIXES[path.suffix.lower()] == "csv":
            yield from _read_csv(path, chunk_rows)
        else:
            yield from _read_parquet(path, chunk_rows)
    except (OSError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise LoadError(f"{path}: cannot be read ({reason})") from exc


def _read_csv(path: Path, chunk_rows: int) -> Iterator[tuple[list[str], Rows]]:
    try:
        reader = pd.read_csv(
            path, dtype=str, keep_default_na=False, chunksize=chunk_rows, encoding="utf-8-sig"
        )
    except pd.errors.EmptyDataError as exc:
        raise LoadError(f"{path}: the file is empty (it needs a header line)") from exc
    line = 1  # the header
    with reader:
        for frame in reader:
            header = [str(name).strip() for name in frame.columns]
            frame.columns = header
            records = frame.to_dict("records")
            yield header, [(line + n, row) for n, row in enumerate(records, start=1)]
            line += len(records)


def _read_parquet(path: Path, chunk_rows: int) -> Iterator[tuple[list[str], Rows]]:
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(path)
    header = list(parquet.schema_arrow.names)
    line = 0
    for batch in parquet.iter_batches(batch_size=chunk_rows):
        records = batch.to_pylist()
        yield header, [(line + n, row) for n, row in enumerate(records, start=1)]
        line += len(records)
