"""Fast row loading for the seed, one strategy per database.

A seed of ten million rows is dominated by per-row overhead, so rows skip SQLAlchemy's
per-value processing: values arrive already in storage form (timestamps as naive UTC text,
dates as ISO text) and go straight to the driver, as ``executemany`` on SQLite and as
``COPY ... FROM STDIN`` on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

from sqlalchemy import Connection, Table

from attentive_sync.sources.errors import SeedError


class BulkLoader(Protocol):
    def load(self, table: Table, rows: Sequence[tuple[object, ...]]) -> None:
        """Append ``rows`` (values in the table's column order) to ``table``; rows may stop
        short of the last columns (added by later revisions), which are then left NULL."""


def _driver(conn: Connection) -> Any:
    """The DB-API connection under ``conn`` (sqlite3 or psycopg), for what SQLAlchemy lacks."""
    raw = conn.connection.driver_connection
    if raw is None:
        raise SeedError("the database connection was closed during the seed")
    return raw


def _leading_columns(table: Table, rows: Sequence[tuple[object, ...]]) -> list[str]:
    return [c.name for c in table.columns][: len(rows[0])]


class SqliteLoader:
    """``executemany`` on the raw sqlite3 connection, inside the caller's transaction."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def load(self, table: Table, rows: Sequence[tuple[object, ...]]) -> None:
        if not rows:
            return
        raw = _driver(self._conn)
        # A connection in autocommit mode (as the store configures it) with no BEGIN
        # issued would commit every row on its own: a hundred times slower, and partial.
        if raw.isolation_level is None and not raw.in_transaction:
            raise RuntimeError("bulk load outside a transaction; wrap it in conn.begin()")
        names = _leading_columns(table, rows)
        columns, marks = ", ".join(names), ", ".join("?" for _ in names)
        raw.cursor().executemany(f"INSERT INTO {table.name} ({columns}) VALUES ({marks})", rows)


class PostgresLoader:
    """``COPY FROM STDIN`` through psycopg, inside the caller's transaction."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def load(self, table: Table, rows: Sequence[tuple[object, ...]]) -> None:
        if not rows:
            return
        # Timestamps arrive as naive UTC text; make the server read them as UTC.
        self._conn.exec_driver_sql("SET LOCAL TIME ZONE 'UTC'")
        columns = ", ".join(_leading_columns(table, rows))
        with _driver(self._conn).cursor().copy(f"COPY {table.name} ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)


@contextmanager
def _sqlite_tuned(conn: Connection) -> Iterator[None]:
    # Durability is pointless mid-seed (a crash means seeding again with --replace) and the
    # page cache is worth 200 MB while ten million rows go in. Set on the raw connection,
    # outside any transaction as SQLite requires, and put back before the connection
    # returns to the pool.
    raw = _driver(conn)
    saved = {p: raw.execute(f"PRAGMA {p}").fetchone()[0] for p in ("synchronous", "cache_size")}
    raw.execute("PRAGMA synchronous = OFF")
    raw.execute("PRAGMA cache_size = -200000")
    try:
        yield
    finally:
        conn.rollback()
        for pragma, value in saved.items():
            raw.execute(f"PRAGMA {pragma} = {int(value)}")


@contextmanager
def bulk_loader(conn: Connection) -> Iterator[BulkLoader]:
    """The loader for ``conn``'s database; other databases are refused, not loaded slowly.

    Enter it before ``conn`` begins a transaction, and call ``load`` only inside
    ``conn.begin()`` blocks: the loaders write through the raw driver connection, which
    SQLAlchemy does not see, so nothing else would open a transaction for them.
    """
    if conn.dialect.name == "sqlite":
        with _sqlite_tuned(conn):
            yield SqliteLoader(conn)
    elif conn.dialect.name == "postgresql":
        yield PostgresLoader(conn)
    else:
        raise SeedError(f"seeding supports SQLite and PostgreSQL, not {conn.dialect.name}")
