"""Parameter types the flows share, so every flow reads a moment or a day the same way.

A plain date (``2026-10-15``) is a moment at midnight UTC; a datetime without a zone is UTC;
a day given as a datetime is that moment's UTC date.
"""

from __future__ import annotations

from datetime import date, datetime, time, timezone
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator


def _date_is_midnight_utc(value: Any) -> Any:
    if isinstance(value, str) and len(value.strip()) == 10:
        value = date.fromisoformat(value.strip())
    if isinstance(value, date) and not isinstance(value, datetime):
        return datetime.combine(value, time(), timezone.utc)
    return value


def _in_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def _utc_day(value: Any) -> Any:
    if isinstance(value, str) and len(value.strip()) > 10:
        value = datetime.fromisoformat(value.strip())
    if isinstance(value, datetime):
        return _in_utc(value).date()
    return value


Moment = Annotated[datetime, BeforeValidator(_date_is_midnight_utc), AfterValidator(_in_utc)]
Day = Annotated[date, BeforeValidator(_utc_day)]
