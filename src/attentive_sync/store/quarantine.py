"""The quarantine: records that can never succeed as they are, parked with a reason code.

Everything stored here is masked first (``attentive_sync.masking``): the quarantine is
read by people, through the CLI and run reports, so it must never show a phone or email.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import BindParameter, Engine, bindparam, func, insert, select, update
from sqlalchemy.engine import Connection

from attentive_sync.masking import mask_payload, mask_text
from attentive_sync.store import _sql
from attentive_sync.store.errors import InvalidRecordError
from attentive_sync.store.tables import SOURCE_KINDS, quarantine
from attentive_sync.store.types import as_of

# Puts a queue's quarantined rows back to pending inside a transaction: (requeued, superseded).
Requeue = Callable[[Connection, Sequence[int], datetime], tuple[list[int], list[int]]]


@dataclass(frozen=True, slots=True)
class QuarantineEntry:
    id: int
    source_kind: str
    source_ref: str
    customer_id: int | None
    reason_code: str
    detail: str
    payload_masked: Any
    created_at: datetime
    replayed_at: datetime | None


@dataclass(frozen=True, slots=True)
class ReplayOutcome:
    """``requeued``: queue rows back to pending. ``superseded``: queue rows a later change
    already overtook, closed without sending. ``to_rederive``: backfill and notice entries
    the engine must rebuild from the source; mark them replayed once it has."""

    requeued: tuple[QuarantineEntry, ...]
    superseded: tuple[QuarantineEntry, ...]
    to_rederive: tuple[QuarantineEntry, ...]


def insert_entries(conn: Connection, entries: Iterable[Mapping[str, Any]], now: datetime) -> None:
    """Add entries (keys: source_kind, source_ref, customer_id, reason_code, detail, payload)
    inside the caller's transaction, masking detail and payload on the way in."""
    rows = [
        {
            "source_kind": _checked_kind(entry["source_kind"]),
            "source_ref": str(entry["source_ref"]),
            "customer_id": entry.get("customer_id"),
            "reason_code": entry["reason_code"],
            "detail": mask_text(entry["detail"]),
            "payload_masked": mask_payload(entry.get("payload")),
            "created_at": now,
        }
        for entry in entries
    ]
    for chunk in _sql.chunks(rows):
        conn.execute(insert(quarantine), chunk)


def _checked_kind(kind: str) -> str:
    if kind not in SOURCE_KINDS:
        raise InvalidRecordError(f"source_kind must be one of {', '.join(SOURCE_KINDS)}")
    return kind


class QuarantineRepository:
    """Add, inspect and replay quarantined records."""

    def __init__(self, engine: Engine, requeuers: Mapping[str, Requeue]) -> None:
        self._engine = engine
        self._requeuers = requeuers

    def add(
        self,
        source_kind: str,
        source_ref: str,
        reason_code: str,
        detail: str,
        *,
        customer_id: int | None = None,
        payload: Any = None,
        now: datetime | None = None,
    ) -> None:
        """Park a record that is not a queue row (a backfill member, a computed notice)."""
        entry = {
            "source_kind": source_kind,
            "source_ref": source_ref,
            "customer_id": customer_id,
            "reason_code": reason_code,
            "detail": detail,
            "payload": payload,
        }
        self.add_many([entry], now=now)

    def add_many(
        self, entries: Sequence[Mapping[str, Any]], *, now: datetime | None = None
    ) -> None:
        """Park several non-queue records in one transaction (``add``'s fields, by name)."""
        for entry in entries:
            if entry["source_kind"] in self._requeuers:
                raise InvalidRecordError(
                    f"{entry['source_kind']} rows are quarantined through their queue, "
                    "which also parks the row"
                )
        if entries:
            # A record already waiting in the quarantine is not parked twice (a job settled
            # again after its settler died parks the same records again).
            waiting: set[tuple[str, str]] = set()
            for kind in {entry["source_kind"] for entry in entries}:
                refs = [str(e["source_ref"]) for e in entries if e["source_kind"] == kind]
                waiting |= {(kind, ref) for ref in self.open_refs(kind, refs)}
            fresh = [e for e in entries if (e["source_kind"], str(e["source_ref"])) not in waiting]
            with self._engine.begin() as conn:
                insert_entries(conn, fresh, as_of(now))

    def list(
        self, reason: str | None = None, limit: int = 100, *, include_replayed: bool = False
    ) -> Sequence[QuarantineEntry]:
        """Entries, oldest first; by default only those not replayed yet."""
        stmt = select(quarantine).order_by(quarantine.c.id).limit(limit)
        if reason is not None:
            stmt = stmt.where(quarantine.c.reason_code == reason)
        if not include_replayed:
            stmt = stmt.where(quarantine.c.replayed_at.is_(None))
        with self._engine.connect() as conn:
            return [QuarantineEntry(**row) for row in conn.execute(stmt).mappings()]

    def open_refs(self, source_kind: str, refs: Sequence[str]) -> set[str]:
        """Which of ``refs`` already wait in the quarantine: a resumed run must not park
        them twice."""
        found: set[str] = set()
        q = quarantine.c
        with self._engine.connect() as conn:
            for chunk in _sql.chunks(refs):
                among = q.source_ref.in_(_expanding(chunk))
                stmt = select(q.source_ref).where(
                    q.source_kind == source_kind, among, q.replayed_at.is_(None)
                )
                found.update(conn.execute(stmt).scalars())
        return found

    def last_customer_parked(self, source_kind: str, ref_prefix: str) -> int:
        """The highest customer id of an open entry whose ref starts with ``ref_prefix``
        (0: none)."""
        q = quarantine.c
        stmt = select(func.max(q.customer_id)).where(
            q.source_kind == source_kind,
            q.source_ref.startswith(ref_prefix, autoescape=True),
            q.replayed_at.is_(None),
        )
        with self._engine.connect() as conn:
            return int(conn.scalar(stmt) or 0)

    def summary(self) -> dict[str, int]:
        """Open (not replayed) entries per reason code."""
        stmt = (
            select(quarantine.c.reason_code, func.count())
            .where(quarantine.c.replayed_at.is_(None))
            .group_by(quarantine.c.reason_code)
            .order_by(quarantine.c.reason_code)
        )
        with self._engine.connect() as conn:
            return {reason: count for reason, count in conn.execute(stmt)}

    def mark_replayed(self, ids: Sequence[int], *, now: datetime | None = None) -> int:
        """Close entries the engine has re-derived; returns how many were still open."""
        with self._engine.begin() as conn:
            return _close(conn, ids, as_of(now))

    def replay(self, reason: str | None = None, *, now: datetime | None = None) -> ReplayOutcome:
        """Give open entries another chance: queue rows go back to pending (attempts reset)
        in the same transaction that closes their entries; other kinds are returned."""
        now = as_of(now)
        with self._engine.begin() as conn:
            stmt = select(quarantine).where(quarantine.c.replayed_at.is_(None))
            if reason is not None:
                stmt = stmt.where(quarantine.c.reason_code == reason)
            stmt = stmt.order_by(quarantine.c.id).with_for_update(of=quarantine)
            entries = [QuarantineEntry(**row) for row in conn.execute(stmt).mappings()]
            requeued, superseded = self._requeue(conn, entries, now)
            # Entries whose row already left the quarantine are closed too: nothing to replay.
            _close(conn, [e.id for e in entries if e.source_kind in self._requeuers], now)
        rederive = tuple(e for e in entries if e.source_kind not in self._requeuers)
        return ReplayOutcome(requeued, superseded, rederive)

    def _requeue(
        self, conn: Connection, entries: Sequence[QuarantineEntry], now: datetime
    ) -> tuple[tuple[QuarantineEntry, ...], tuple[QuarantineEntry, ...]]:
        requeued: list[QuarantineEntry] = []
        superseded: list[QuarantineEntry] = []
        for kind, requeue in self._requeuers.items():
            mine = [entry for entry in entries if entry.source_kind == kind]
            back, overtaken = requeue(conn, [int(entry.source_ref) for entry in mine], now)
            requeued.extend(entry for entry in mine if int(entry.source_ref) in back)
            superseded.extend(entry for entry in mine if int(entry.source_ref) in overtaken)
        return tuple(requeued), tuple(superseded)


def _close(conn: Connection, ids: Sequence[int], now: datetime) -> int:
    closed = 0
    for among in _sql.member_of(conn, quarantine.c.id, ids):
        result = conn.execute(
            update(quarantine)
            .where(among, quarantine.c.replayed_at.is_(None))
            .values(replayed_at=now)
        )
        closed += result.rowcount
    return closed


def _expanding(refs: list[str]) -> BindParameter[Any]:
    """An IN list as one expanding parameter (no expression object per ref)."""
    return bindparam(None, refs, type_=quarantine.c.source_ref.type, expanding=True)
