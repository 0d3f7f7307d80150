"""Notices already sent (reward reminders, expiry notices, reward-available events): the
dedupe ledger.

The unique constraint on (kind, customer_id, period_key) is the lock: whoever inserts the
row first owns the notice, so two runs, or two workers, never send the same one twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Engine, delete

from attentive_sync.store import _sql
from attentive_sync.store.tables import notices_sent
from attentive_sync.store.types import as_of


class Notices:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def claim(
        self,
        kind: str,
        customer_id: int,
        period_key: str,
        event_id: str | None = None,
        *,
        now: datetime | None = None,
    ) -> bool:
        """True if this call claimed the notice; False if it was claimed before."""
        values = {
            "kind": kind,
            "customer_id": customer_id,
            "period_key": period_key,
            "event_id": event_id,
            "sent_at": as_of(now),
        }
        with self._engine.begin() as conn:
            stmt = _sql.upsert_insert(conn, notices_sent).values(**values)
            inserted = conn.execute(stmt.on_conflict_do_nothing().returning(notices_sent.c.id))
            return inserted.first() is not None

    def record_sent(
        self,
        kind: str,
        sent: Sequence[tuple[int, str, str]],
        *,
        now: datetime | None = None,
    ) -> None:
        """Note notices already sent, as ``(customer_id, period_key, event_id)``; one noted
        before is left as it is, so noting twice changes nothing."""
        if not sent:
            return
        at = as_of(now)
        rows = [
            {"kind": kind, "customer_id": cid, "period_key": key, "event_id": eid, "sent_at": at}
            for cid, key, eid in sent
        ]
        with self._engine.begin() as conn:
            stmt = _sql.upsert_insert(conn, notices_sent).on_conflict_do_nothing()
            conn.execute(stmt, rows)

    def release(self, kind: str, customer_id: int, period_key: str) -> bool:
        """Give back a claim whose notice could not be sent, so a later run sends it."""
        table = notices_sent
        with self._engine.begin() as conn:
            result = conn.execute(
                delete(table).where(
                    table.c.kind == kind,
                    table.c.customer_id == customer_id,
                    table.c.period_key == period_key,
                )
            )
        return result.rowcount == 1
