"""Backfill checkpoints: how far a backfill run has read each audience.

Written only after the members up to ``last_customer_id`` were delivered, so a restart
resumes after them and never skips one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

from sqlalchemy import Engine, select

from attentive_sync.store import _sql
from attentive_sync.store.tables import backfill_checkpoints
from attentive_sync.store.types import as_of

_PROGRESS = ("last_customer_id", "members_read", "updated_at")


@dataclass(frozen=True, slots=True)
class Checkpoint:
    run_key: str
    audience: str
    last_customer_id: int
    members_read: int
    updated_at: datetime


class Checkpoints:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def get(self, run_key: str, audience: str) -> Checkpoint | None:
        table = backfill_checkpoints
        stmt = select(table).where(table.c.run_key == run_key, table.c.audience == audience)
        with self._engine.connect() as conn:
            row = conn.execute(stmt).mappings().first()
        return Checkpoint(**row) if row is not None else None

    def set(
        self,
        run_key: str,
        audience: str,
        last_customer_id: int,
        members_read: int,
        *,
        now: datetime | None = None,
    ) -> Checkpoint:
        saved = Checkpoint(run_key, audience, last_customer_id, members_read, as_of(now))
        values = asdict(saved)
        with self._engine.begin() as conn:
            stmt = _sql.upsert_insert(conn, backfill_checkpoints).values(**values)
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["run_key", "audience"],
                    set_={k: stmt.excluded[k] for k in _PROGRESS},
                )
            )
        return saved
