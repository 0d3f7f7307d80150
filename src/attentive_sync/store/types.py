"""Column types that behave the same on SQLite and PostgreSQL.

SQLite has no time zone type and no JSONB; these wrappers hide that so every query and
every comparison in the store reads the same on both back ends.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Integer
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

from attentive_sync.store.errors import InvalidRecordError

# SQLite only autoincrements a column declared exactly INTEGER PRIMARY KEY (the rowid alias).
RowId: TypeEngine[int] = BigInteger().with_variant(Integer(), "sqlite")

# JSONB on PostgreSQL so payloads can be indexed and compared later; JSON text elsewhere.
JsonValue: TypeEngine[Any] = JSON().with_variant(JSONB(), "postgresql")


def utcnow() -> datetime:
    """The store's clock: aware UTC, the only kind of time it accepts."""
    return datetime.now(timezone.utc)


def aware(value: datetime, name: str = "time") -> datetime:
    """``value`` if it carries a time zone; refused otherwise, before it reaches SQL."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidRecordError(f"{name} {value.isoformat()} is naive: it needs a time zone")
    return value


def as_of(now: datetime | None) -> datetime:
    """The caller's clock reading (tests pin it), or the store's clock."""
    return utcnow() if now is None else aware(now, "now")


class UtcDateTime(TypeDecorator[datetime]):
    """An aware UTC timestamp on both back ends.

    SQLite stores it as naive UTC text in one fixed format, so text comparison in SQL is
    time comparison. Naive datetimes are refused: guessing their zone corrupts lease times.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        utc = aware(value).astimezone(timezone.utc)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)

    # SQLite: the text is written and read in one step, with the same result as the two
    # steps above (SQLAlchemy's text conversion, then the zone). A lease reads four times
    # per row and a settlement writes one per accepted value: ``datetime.replace`` alone
    # cost more than parsing the text.

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        generic = super().bind_processor(dialect)
        if dialect.name != "sqlite" or generic is None:
            return generic
        slow = generic

        def process(value: Any) -> Any:
            if type(value) is datetime and value.tzinfo is timezone.utc:
                return value.isoformat(" ", "microseconds")[:_SQLITE_TEXT]
            return slow(value)

        return process

    def result_processor(self, dialect: Dialect, coltype: Any) -> Callable[[Any], Any] | None:
        generic = super().result_processor(dialect, coltype)
        if dialect.name != "sqlite" or generic is None:
            return generic
        slow = generic

        def process(value: Any) -> Any:
            if value is None:
                return None
            # The store's own text: "YYYY-MM-DD HH:MM:SS.ffffff", naive UTC.
            if type(value) is str and len(value) == _SQLITE_TEXT and value[10] == " ":
                return datetime.fromisoformat(value + "+00:00")
            return slow(value)

        return process


# How SQLite holds a UtcDateTime: "2026-12-03 18:53:30.123456".
_SQLITE_TEXT = 26
