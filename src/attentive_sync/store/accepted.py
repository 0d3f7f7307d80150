"""The ledger of what Attentive accepted: the last value of each attribute per customer.

Written when a job settles; each value is stamped with its job's submission time, so a
job that settles late never overwrites a value a later job set. It answers "what does
Attentive hold for this customer" without asking Attentive (support, audits, tests).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, delete, select, tuple_
from sqlalchemy.engine import Connection

from attentive_sync.store import _sql
from attentive_sync.store.db import json_text
from attentive_sync.store.tables import accepted_attributes


@dataclass(frozen=True, slots=True)
class AcceptedAttribute:
    customer_id: int
    name: str
    value: Any
    job_id: str
    accepted_at: datetime


_COLUMNS = ("customer_id", "name", "value", "job_id", "accepted_at")
_KEY = ("customer_id", "name")


class AcceptedAttributes:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def record_many(self, records: Iterable[AcceptedAttribute]) -> int:
        """Upsert accepted values; returns how many (customer, name) pairs were given.

        Latest wins by ``accepted_at``: a job that settles late must not overwrite a value
        a newer job already set.
        """
        with self._engine.begin() as conn:
            return record_in(conn, records)

    def forget(self, pairs: Iterable[tuple[int, str]]) -> None:
        """Drop what the ledger holds for these (customer, attribute) pairs: a job whose
        fate is unknown carries them, so Attentive may hold another value now."""
        with self._engine.begin() as conn:
            forget_in(conn, pairs)

    def for_customers(self, customer_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
        """Attribute name -> last accepted value, per customer (absent: nothing accepted)."""
        table, found = accepted_attributes, dict[int, dict[str, Any]]()
        with self._engine.connect() as conn:
            for among in _sql.member_of(conn, table.c.customer_id, sorted(set(customer_ids))):
                stmt = select(table.c.customer_id, table.c.name, table.c.value).where(among)
                for cid, name, value in conn.execute(stmt):
                    found.setdefault(cid, {})[name] = value
        return found


def record_in(conn: Connection, records: Iterable[AcceptedAttribute]) -> int:
    """``AcceptedAttributes.record_many`` inside the caller's transaction."""
    latest: dict[tuple[int, str], AcceptedAttribute] = {}
    for record in records:
        key = (record.customer_id, record.name)
        if key not in latest or record.accepted_at >= latest[key].accepted_at:
            latest[key] = record
    rows = [(r.customer_id, r.name, r.value, r.job_id, r.accepted_at) for r in latest.values()]
    for chunk in _sql.chunks(rows):
        _sql.insert_rows(
            conn,
            accepted_attributes,
            chunk,
            _COLUMNS,
            upsert=(_KEY, ("value", "job_id", "accepted_at")),
            unless_older="accepted_at",
        )
    return len(rows)


def forget_in(conn: Connection, pairs: Iterable[tuple[int, str]]) -> None:
    """``AcceptedAttributes.forget`` inside the caller's transaction."""
    unique = set(pairs)
    if not unique:
        return
    if conn.dialect.name == "sqlite":
        # One JSON parameter read as a table, each pair probing the primary key: a
        # statement written once (recording a job runs this per job; building and keying
        # an expression cost more than the probes).
        conn.exec_driver_sql(_FORGET_SQLITE, (json_text(list(unique)),))
        return
    table = accepted_attributes
    key = tuple_(table.c.customer_id, table.c.name)
    for chunk in _sql.chunks(sorted(unique)):
        conn.execute(delete(table).where(key.in_(chunk)))


_FORGET_SQLITE = (
    "DELETE FROM accepted_attributes WHERE rowid IN ("
    "SELECT a.rowid FROM json_each(?) AS pair JOIN accepted_attributes AS a"
    " ON a.customer_id = json_extract(pair.value, '$[0]')"
    " AND a.name = json_extract(pair.value, '$[1]'))"
)
