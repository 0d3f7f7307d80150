"""One way to open the state store, whatever the URL, and one way to create or upgrade it.

``sqlite:///path`` is the zero-setup default: WAL so readers never wait for the writer,
a busy timeout so concurrent writers queue instead of failing, foreign keys on, and every
transaction opened with ``BEGIN IMMEDIATE`` so two workers never both read a queue row
as free and then both take it. ``postgresql+psycopg://`` is for production and several
workers; there row locks (``FOR UPDATE SKIP LOCKED``) do that job.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import orjson
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError

from attentive_sync.settings import SyncSettings
from attentive_sync.store.errors import UnsupportedDatabaseError

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 30_000
# Any fixed number: it names the PostgreSQL advisory lock that serialises schema upgrades
# when several workers start at once.
_MIGRATION_LOCK_ID = 0x617474656E74


def normalise_url(url: str | URL | None = None) -> URL:
    """Parse a store URL, defaulting to the settings; bare ``postgresql://`` gets psycopg 3."""
    try:
        parsed = make_url(url if url is not None else SyncSettings().db_url)
    except ArgumentError as exc:
        # The text is not echoed back: it may hold a password.
        raise UnsupportedDatabaseError(
            "the state store URL could not be parsed; expected sqlite:///PATH "
            "or postgresql://USER@HOST/DATABASE"
        ) from exc
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise UnsupportedDatabaseError(
            f"the state store runs on sqlite:/// or postgresql:// URLs, not {parsed.drivername}"
        )
    return parsed


def make_engine(
    url: str | URL | None = None, *, read_only: bool = False, **engine_kwargs: Any
) -> Engine:
    """Create an engine for the store; SQLite connections get the pragmas described above.

    ``read_only`` engines (the loyalty source) skip ``BEGIN IMMEDIATE``: a reader must not
    take SQLite's write lock, or every page read would queue behind the writers.
    """
    parsed = normalise_url(url)
    engine_kwargs.setdefault("json_serializer", json_text)
    engine_kwargs.setdefault("json_deserializer", json_value)
    engine = create_engine(parsed, **engine_kwargs)
    if engine.dialect.name == "sqlite":
        _configure_sqlite(engine, immediate=not read_only)
    return engine


def json_text(value: Any) -> str:
    """JSON columns' encoder: orjson (several times faster than ``json`` on the hot paths
    that store a job's items and read them back). Like ``json``, it takes non-string dict
    keys; unlike it, it writes NaN and infinities as null (no column holds them). An integer
    past 64 bits is written by ``json``."""
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        # An integer past 64 bits, which orjson refuses and ``json`` writes exactly.
        return json.dumps(value)


def json_value(text: Any) -> Any:
    """JSON columns' decoder: orjson, with ``json``'s behaviour kept at the edges. A value
    that is not text raises ``TypeError`` (SQLite hands a number stored in a JSON column
    back as a number; SQLAlchemy then takes it as it is), and text orjson refuses (a NaN
    ``json`` once wrote) or would misread (an integer past 64 bits) is read by ``json``."""
    if not isinstance(text, str | bytes | bytearray):
        raise TypeError(f"JSON text expected, got {type(text).__name__}")
    if _LONG_NUMBER.search(text if isinstance(text, str) else bytes(text).decode()):
        # orjson would read an integer past 64 bits as a float.
        return json.loads(text)
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


_LONG_NUMBER = re.compile(r"\d{19}")


def _configure_sqlite(engine: Engine, *, immediate: bool = True) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module, which would otherwise
        # open deferred transactions on its own and defeat BEGIN IMMEDIATE below.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        _use_wal(cursor)
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    if not immediate:

        @event.listens_for(engine, "begin")
        def _on_begin_deferred(connection: Connection) -> None:
            connection.exec_driver_sql("BEGIN")

        return
    writers = _writer_lock(engine.url.database or "")

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # The threads of this process queue on a lock of their own first, so the next one
        # goes the moment the last commits: SQLite's busy handler would have it sleep in
        # growing steps (up to 100 ms) however soon the lock came free. The wait is as long
        # as the busy timeout; past it, SQLite's own wait (and its error) decide as before.
        if not writers.acquire(timeout=SQLITE_BUSY_TIMEOUT_MS / 1000):
            _begin_without_waiting(connection)
            return
        try:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            writers.release()
            raise
        connection.connection.info[_HOLDS_WRITER_LOCK] = writers

    dialect = engine.dialect
    commit, rollback = dialect.do_commit, dialect.do_rollback

    def _released_after(end: Any) -> Any:
        def do(dbapi_connection: Any) -> None:
            try:
                end(dbapi_connection)
            finally:
                # After the COMMIT or ROLLBACK itself, whether or not it succeeded (a
                # connection whose end failed is discarded by the pool).
                try:
                    info = dbapi_connection.info
                except (AttributeError, NotImplementedError):
                    info = {}  # the dialect's first look at a new connection: no lock
                lock = info.pop(_HOLDS_WRITER_LOCK, None)
                if lock is not None:
                    lock.release()

        return do

    @event.listens_for(engine, "invalidate")
    def _on_invalidate(_dbapi_connection: Any, record: Any, _exception: Any) -> None:
        # A connection dropped mid-transaction never commits or rolls back through us.
        lock = record.info.pop(_HOLDS_WRITER_LOCK, None)
        if lock is not None:
            lock.release()

    # The engine's own dialect instance: the pool's reset on return ends through it too.
    dialect.do_commit = _released_after(commit)  # type: ignore[method-assign]
    dialect.do_rollback = _released_after(rollback)  # type: ignore[method-assign]


def _begin_without_waiting(connection: Connection) -> None:
    """BEGIN IMMEDIATE for a writer that spent the whole busy timeout on the in-process
    lock: SQLite answers at once (its own "database is locked", or the lock if it came
    free), not after a second timeout."""
    connection.exec_driver_sql("PRAGMA busy_timeout=0")
    try:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    finally:
        try:
            connection.exec_driver_sql(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        except Exception:
            connection.invalidate()  # never pooled again without its busy timeout
            raise


def _use_wal(cursor: Any) -> None:
    """Switch the file to WAL. On a file still blank, another connection's first write
    transaction holds a lock that SQLite reports at once, without its busy handler; the
    switch is retried until that transaction ends (then the file is WAL already)."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.01)


_HOLDS_WRITER_LOCK = "attentive_sync.writer_lock"
_writer_locks: dict[str, threading.Lock] = {}
_writer_locks_guard = threading.Lock()


def _writer_lock(database: str) -> threading.Lock:
    """The in-process lock of one SQLite database file (in-memory databases are each
    their own, so they get a lock of their own)."""
    key = str(Path(database).resolve()) if database and database != ":memory:" else ""
    with _writer_locks_guard:
        if not key:
            return threading.Lock()
        return _writer_locks.setdefault(key, threading.Lock())


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic configuration pointing at the packaged migrations; no ini file needed."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str | None:
    """The newest revision the installed code knows."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None when it was never initialised."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Upgrade the schema in place to ``revision``; already there is a no-op."""
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            lock = text("SELECT pg_advisory_xact_lock(:id)")
            connection.execute(lock, {"id": _MIGRATION_LOCK_ID})
        command.upgrade(alembic_config(connection), revision)


def init_db(url: str | URL | None = None) -> str | None:
    """Create the store or upgrade it in place; returns the revision it is now at."""
    engine = make_engine(url)
    try:
        upgrade(engine)
        return current_revision(engine)
    finally:
        engine.dispose()
