"""What the engine last sent as each audience's membership (the membership diff's baseline).

A customer is in an audience's sent membership once the engine has handed their ``true``
to the delivery path (a backfill batch planned, an ``enter`` queued by the diff), and
leaves it once an ``exit`` is queued. The delivery path then owns the record: retries,
per-customer order and the quarantine happen there, so the baseline never waits on a job.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Engine, select

from attentive_sync.store import _sql
from attentive_sync.store.tables import audience_diffs, audience_sent_members


class SentMembers:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def add(self, audience: str, customer_ids: Iterable[int]) -> None:
        """Record these customers as sent members of ``audience`` (already there: kept)."""
        t = audience_sent_members
        rows = [{"audience": audience, "customer_id": cid} for cid in sorted(set(customer_ids))]
        with self._engine.begin() as conn:
            for chunk in _sql.chunks(rows, 5_000):
                stmt = _sql.upsert_insert(conn, t).on_conflict_do_nothing(
                    index_elements=[t.c.audience, t.c.customer_id]
                )
                conn.execute(stmt, chunk)

    def of(self, audience: str) -> set[int]:
        """The customers last sent as members of ``audience``."""
        t = audience_sent_members
        with self._engine.connect() as conn:
            stmt = select(t.c.customer_id).where(t.c.audience == audience)
            return set(conn.execute(stmt).scalars())

    def diffed(self) -> set[str]:
        """The audiences whose changes the membership diff has taken over."""
        with self._engine.connect() as conn:
            return set(conn.execute(select(audience_diffs.c.audience)).scalars())
