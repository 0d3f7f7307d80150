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
from attentive_sync.store.tables import accepted_attributes


@dataclass(frozen=True, slots=True)
class AcceptedAttribute:
    customer_id: int
    name: str
    value: Any
    job_id: str
    accepted_at: datetime


class AcceptedAttributes:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def record_many(self, records: Iterable[AcceptedAttribute]) -> int:
        """Upsert accepted values; returns how many (customer, name) pairs were given.

        Latest wins by ``accepted_at``: a job that settles late must not overwrite a value
        a newer job already set.
        """
        latest: dict[tuple[int, str], AcceptedAttribute] = {}
        for record in records:
            key = (record.customer_id, record.name)
            if key not in latest or record.accepted_at >= latest[key].accepted_at:
                latest[key] = record
        rows = [
            {
                "customer_id": r.customer_id,
                "name": r.name,
                "value": r.value,
                "job_id": r.job_id,
                "accepted_at": r.accepted_at,
            }
            for r in latest.values()
        ]
        table = accepted_attributes
        with self._engine.begin() as conn:
            for chunk in _sql.chunks(rows):
                stmt = _sql.upsert_insert(conn, table)
                stmt = stmt.on_conflict_do_update(
                    index_elements=[table.c.customer_id, table.c.name],
                    set_={
                        "value": stmt.excluded.value,
                        "job_id": stmt.excluded.job_id,
                        "accepted_at": stmt.excluded.accepted_at,
                    },
                    where=stmt.excluded.accepted_at >= table.c.accepted_at,
                )
                conn.execute(stmt, chunk)
        return len(rows)

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


def forget_in(conn: Connection, pairs: Iterable[tuple[int, str]]) -> None:
    """``AcceptedAttributes.forget`` inside the caller's transaction."""
    table = accepted_attributes
    key = tuple_(table.c.customer_id, table.c.name)
    for chunk in _sql.chunks(sorted(set(pairs))):
        conn.execute(delete(table).where(key.in_(chunk)))
