"""Putting quarantined queue rows back in line, unless a later change overtook them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Table, exists, select, update
from sqlalchemy.engine import Connection

from attentive_sync.store import _sql


def requeue(
    conn: Connection,
    table: Table,
    supersede_key: tuple[str, ...],
    seqs: Sequence[int],
    now: datetime,
) -> tuple[list[int], list[int]]:
    """Quarantined rows back to pending, attempts reset; returns (requeued, superseded).

    A row overtaken by a later row with the same ``supersede_key`` values stays parked:
    sending an old "enter" after a newer "exit" went through would undo the newer change.
    """
    superseded = _superseded(conn, table, supersede_key, seqs)
    remaining = [seq for seq in seqs if seq not in superseded]
    requeued: list[int] = []
    for among in _sql.member_of(conn, table.c.seq, remaining):
        stmt = (
            update(table)
            .where(among, table.c.state == "quarantined")
            .values(
                state="pending",
                attempts=0,
                next_attempt_at=now,
                last_error=None,
                lease_owner=None,
                lease_expires_at=None,
                job_id=None,
            )
            .returning(table.c.seq)
        )
        requeued.extend(conn.execute(stmt).scalars())
    return sorted(requeued), sorted(superseded)


def _superseded(
    conn: Connection, table: Table, supersede_key: tuple[str, ...], seqs: Sequence[int]
) -> set[int]:
    if not supersede_key:
        return set()
    later = table.alias("later")
    overtaken = exists().where(
        later.c.seq > table.c.seq,
        later.c.state != "quarantined",
        *(later.c[name] == table.c[name] for name in supersede_key),
    )
    found: set[int] = set()
    for among in _sql.member_of(conn, table.c.seq, seqs):
        stmt = select(table.c.seq).where(among, table.c.state == "quarantined", overtaken)
        found.update(conn.execute(stmt).scalars())
    return found
