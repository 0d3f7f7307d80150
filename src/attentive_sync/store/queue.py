"""The durable queue behind both the audience deltas and the loyalty events.

A row moves ``pending -> leased -> inflight -> done``; ``nack`` sends it back to pending
for a later attempt, ``quarantine`` parks it for a person. Two rules hold however many
workers lease at once:

* a row is taken by one worker at a time (PostgreSQL: ``FOR UPDATE SKIP LOCKED``;
  SQLite: every transaction is ``BEGIN IMMEDIATE``, so leases run one after another);
* a customer's changes reach Attentive in queue order: a row is not leasable while an
  earlier row of the same customer is leased, inflight, or waiting for a retry. (Any
  such row holds the customer back, earlier or later: a replayed old row waits for the
  customer's newer row in flight, so one customer never has two leases out at once.)
  One lease may take several consecutive rows of a customer; that worker keeps them in
  order (the batcher flushes before a second change of a user).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy import ColumnElement, Engine, Table, and_, bindparam, func, or_, select, update
from sqlalchemy.engine import Connection

from attentive_sync.masking import mask_text
from attentive_sync.store import _sql
from attentive_sync.store._lease import keep_customer_order, takeable_rows
from attentive_sync.store._requeue import requeue
from attentive_sync.store.holds import JOB, JOB_HOLD, hold_in, job_holder
from attentive_sync.store.quarantine import insert_entries
from attentive_sync.store.records import QueuedDelta, QueuedEvent, QueuedWrite
from attentive_sync.store.tables import QUEUE_STATES, UNFINISHED_STATES, bulk_jobs
from attentive_sync.store.types import as_of, aware

MAX_LEASE = 5_000


class Enqueueable(Protocol):
    @property
    def key(self) -> str: ...

    def values(self) -> dict[str, Any]: ...


N = TypeVar("N", bound=Enqueueable)
R = TypeVar("R", QueuedDelta, QueuedEvent, QueuedWrite)


@dataclass(frozen=True)
class QueueSpec(Generic[N, R]):
    """What differs between the queues: the table, its idempotency key, the row type.

    ``supersede_key`` names the columns that make a later row overtake an earlier one
    (a customer's later change to the same audience); empty when rows never overtake
    (events are facts, each worth sending).
    """

    table: Table
    key_column: str
    source_kind: str
    row_type: type[R]
    supersede_key: tuple[str, ...] = ()
    # Attribute writes keep one job at a time per customer across every kind of write.
    across_jobs: bool = False
    # The kinds of bulk job that carry this queue's rows: a lease finds their customers
    # through the rows in flight, never by reading the jobs' items (``_lease.held_back``).
    job_kinds: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class EnqueueResult:
    stored: int
    duplicates: int


class Queue(Generic[N, R]):
    """Lease/ack access to one queue table."""

    def __init__(self, engine: Engine, spec: QueueSpec[N, R]) -> None:
        self._engine = engine
        self.spec: QueueSpec[N, R] = spec
        self._t: Table = spec.table
        # A lease selects the table's columns in this order.
        columns = tuple(c.name for c in spec.table.c)
        self._leased: Callable[[Any, str, datetime], R] = _leased_rows(spec.row_type, columns)

    def enqueue(
        self,
        items: Iterable[N],
        *,
        now: datetime | None = None,
        lease: tuple[str, float] | None = None,
    ) -> EnqueueResult:
        """Store new items; an item whose key is already queued is acknowledged, not stored.

        ``lease`` (owner, seconds) stores them leased already: the run that produced them
        sends them itself, and only if it dies do they fall to whoever leases next.
        """
        with self._engine.begin() as conn:
            return self.enqueue_in(conn, items, now=now, lease=lease)

    def enqueue_in(
        self,
        conn: Connection,
        items: Iterable[N],
        *,
        now: datetime | None = None,
        lease: tuple[str, float] | None = None,
    ) -> EnqueueResult:
        """``enqueue`` inside the caller's transaction, so the items are stored together
        with whatever else it writes (or not at all)."""
        now = as_of(now)
        received = 0
        held: dict[str, Any] = {}
        if lease is not None:
            owner, seconds = lease
            expires = now + timedelta(seconds=seconds)
            held = {"state": "leased", "lease_owner": owner, "lease_expires_at": expires}
        unique: dict[str, dict[str, Any]] = {}
        for item in items:
            received += 1
            values = {**item.values(), "enqueued_at": now, "next_attempt_at": now, **held}
            unique.setdefault(item.key, values)
        stored = 0
        for chunk in _sql.chunks(unique.values()):
            stmt = _sql.upsert_insert(conn, self._t).on_conflict_do_nothing(
                index_elements=[self.spec.key_column]
            )
            stored += len(conn.execute(stmt.returning(self._t.c.seq), chunk).all())
        return EnqueueResult(stored=stored, duplicates=received - stored)

    def lease(
        self,
        limit: int,
        lease_seconds: float,
        owner: str,
        now: datetime | None = None,
        *,
        only: Mapping[str, Sequence[str]] | None = None,
    ) -> list[R]:
        """Take up to ``limit`` rows in queue order for ``owner`` until the lease expires.

        ``only`` narrows the lease to rows whose columns hold one of the given values (a
        notice flow sends its own notices and leaves every other event to the relay).
        """
        if not 1 <= limit <= MAX_LEASE:
            raise ValueError(f"limit must be between 1 and {MAX_LEASE}, got {limit}")
        if lease_seconds <= 0:
            raise ValueError(f"lease_seconds must be positive, got {lease_seconds}")
        now = as_of(now)
        expires = now + timedelta(seconds=lease_seconds)
        with self._engine.begin() as conn:
            narrow = [self._t.c[name].in_(values) for name, values in (only or {}).items()]
            job_kinds = self.spec.job_kinds if self.spec.across_jobs else None
            stmt = takeable_rows(self._t, limit, now, narrow, job_kinds=job_kinds)
            candidates = conn.execute(stmt).all()
            if narrow or conn.dialect.name != "sqlite":
                # On SQLite a whole lease is one write transaction, so no other worker is
                # leasing a customer's earlier row meanwhile; and whether a customer is
                # held back depends on the customer alone, so a takeable earlier row of a
                # customer taken here comes first in queue order and is taken too. Only a
                # narrowed lease can pass over one (see ``keep_customer_order``). Keep
                # every other condition of the lease per customer for this to hold.
                kept = keep_customer_order(conn, self._t, [r._mapping for r in candidates])
                seqs = {row["seq"] for row in kept}
                candidates = [row for row in candidates if row.seq in seqs]
            for among in _sql.member_of(conn, self._t.c.seq, [row.seq for row in candidates]):
                conn.execute(
                    update(self._t)
                    .where(among)
                    .values(state="leased", lease_owner=owner, lease_expires_at=expires)
                )
        return [self._leased(row, owner, expires) for row in candidates]

    def owned(self, seqs: Sequence[int], by: str, now: datetime | None = None) -> set[int]:
        """Which of ``seqs`` ``by`` (a lease owner or a job id) still holds, its lease not
        run out (a row whose lease ran out may be another run's any moment: not sent)."""
        found: set[int] = set()
        t, live = self._t, as_of(now)
        unexpired = or_(t.c.state == "inflight", t.c.lease_expires_at > live)
        with self._engine.connect() as conn:
            for among in _sql.member_of(conn, self._t.c.seq, seqs):
                stmt = select(self._t.c.seq).where(among, self._owned_by(by), unexpired)
                found.update(conn.execute(stmt).scalars())
        return found

    def ack(self, seqs: Sequence[int], *, by: str) -> int:
        """Attentive accepted these rows (or they need no sending): they are done.

        ``by`` is who holds them: the lease owner of leased rows, or the job that carries
        inflight ones. A row someone else holds now (its lease expired and another run
        took it) is left alone; the count says how many moved.
        """
        if not seqs:
            return 0
        with self._engine.begin() as conn:
            return ack_in(conn, self._t, seqs, by)

    def nack(self, seqs: Sequence[int], error: str, retry_at: datetime, *, by: str) -> int:
        """Send rows ``by`` holds back to pending, to be leased again from ``retry_at``."""
        return self._transition(
            seqs,
            by,
            {
                "state": "pending",
                "attempts": self._t.c.attempts + 1,
                "next_attempt_at": aware(retry_at, "retry_at"),
                "last_error": mask_text(error),
                "lease_owner": None,
                "lease_expires_at": None,
                "job_id": None,
            },
        )

    def renew(self, owner: str, lease_seconds: float, now: datetime | None = None) -> int:
        """Extend every lease ``owner`` holds by ``lease_seconds`` from now: a run still at
        work on its rows keeps them (and their customers held back) however long that takes.
        A row whose lease ran out and another run took is not ``owner``'s any more."""
        if lease_seconds <= 0:
            raise ValueError(f"lease_seconds must be positive, got {lease_seconds}")
        t = self._t
        expires = as_of(now) + timedelta(seconds=lease_seconds)
        with self._engine.begin() as conn:
            stmt = update(t).where(t.c.state == "leased", t.c.lease_owner == owner)
            return conn.execute(stmt.values(lease_expires_at=expires)).rowcount

    def leased_by(self, owner: str) -> list[int]:
        """The rows ``owner`` leases now (what a failed run must hand back)."""
        t = self._t
        with self._engine.connect() as conn:
            stmt = select(t.c.seq).where(t.c.state == "leased", t.c.lease_owner == owner)
            return sorted(conn.execute(stmt).scalars())

    def unlease(self, seqs: Sequence[int], *, by: str) -> int:
        """Hand rows ``by`` leases back untried (no attempt counted): they go next time."""
        values = {"state": "pending", "lease_owner": None, "lease_expires_at": None}
        return self._transition(seqs, by, values)

    def _owned_by(self, by: str) -> ColumnElement[bool]:
        return _owned_by(self._t, by)

    def _transition(self, seqs: Sequence[int], by: str, values: Mapping[str, Any]) -> int:

        moved = 0
        with self._engine.begin() as conn:
            for among in _sql.member_of(conn, self._t.c.seq, seqs):
                result = conn.execute(
                    update(self._t).where(among, self._owned_by(by)).values(**values)
                )
                moved += result.rowcount
        return moved

    def quarantine(
        self,
        seqs: Sequence[int],
        reason_code: str,
        detail: str,
        *,
        by: str | None,
        payloads: Mapping[int, Any] | None = None,
        now: datetime | None = None,
    ) -> int:
        """Park rows that can never succeed, with a reason, for a person to look at.

        ``payloads`` (by seq) is what to keep for that person, e.g. the mapped record
        Attentive refused; the queue row itself is kept otherwise. Either is masked.
        ``by`` is who holds the rows (see ``ack``); ``None`` parks any unfinished row (a
        person's command).
        """
        now = as_of(now)
        with self._engine.begin() as conn:
            found = self._open_rows(conn, seqs, by)
            rows = [self.spec.row_type.from_mapping(r) for r in found]
            entries = [
                {
                    "source_kind": self.spec.source_kind,
                    "source_ref": str(row.seq),
                    "customer_id": row.customer_id,
                    "reason_code": reason_code,
                    "detail": detail,
                    "payload": (payloads or {}).get(row.seq, row.quarantine_payload()),
                }
                for row in rows
            ]
            insert_entries(conn, entries, now)
            self._hold_for_running_jobs(conn, rows, by, now)
            for among in _sql.member_of(conn, self._t.c.seq, [row.seq for row in rows]):
                conn.execute(
                    update(self._t)
                    .where(among)
                    .values(
                        state="quarantined",
                        last_error=mask_text(f"{reason_code}: {detail}"),
                        lease_expires_at=None,
                    )
                )
        return len(rows)

    def _hold_for_running_jobs(
        self, conn: Connection, rows: Sequence[R], by: str | None, now: datetime
    ) -> None:
        """A row parked while its job runs no longer holds its customer back. Where a
        lease reads that job only through its rows (a job of this queue's kinds), the job
        holds the customer instead, until it settles: a newer change must not overtake it
        at Attentive."""
        running: dict[str, list[int]] = {}
        for row in rows:
            if row.state == "inflight" and row.job_id and row.job_id != by:
                running.setdefault(row.job_id, []).append(row.customer_id)
        if not running:
            return
        kinds = select(bulk_jobs.c.job_id, bulk_jobs.c.kind).where(
            bulk_jobs.c.job_id.in_(list(running))
        )
        for job_id, kind in conn.execute(kinds):
            if kind in self.spec.job_kinds:
                hold_in(conn, running[job_id], job_holder(job_id), JOB, now + JOB_HOLD)

    def _open_rows(self, conn: Connection, seqs: Sequence[int], by: str | None) -> list[Any]:
        t = self._t
        rows: list[Any] = []
        owned = self._owned_by(by) if by is not None else t.c.state.in_(UNFINISHED_STATES)
        for among in _sql.member_of(conn, t.c.seq, seqs):
            stmt = select(t).where(among, owned)
            rows.extend(conn.execute(stmt.with_for_update(of=t)).mappings())
        return sorted(rows, key=lambda row: row["seq"])

    def requeue_quarantined(
        self, conn: Connection, seqs: Sequence[int], now: datetime
    ) -> tuple[list[int], list[int]]:
        """Inside the caller's transaction, put quarantined rows back to pending with
        attempts reset; returns (requeued, superseded) seqs (see ``_requeue``)."""
        return requeue(conn, self._t, self.spec.supersede_key, seqs, now)

    def unfinished(self, customer_ids: Sequence[int], *columns: str) -> set[tuple[Any, ...]]:
        """``(customer_id, *columns)`` of the rows of ``customer_ids`` not finished yet
        (pending, leased or inflight)."""
        t: Table = self._t
        found: set[tuple[Any, ...]] = set()
        selected = [t.c.customer_id, *[t.c[name] for name in columns]]
        wanted = set(customer_ids)
        with self._engine.connect() as conn:
            for among in _sql.ids_among(conn, t.c.customer_id, customer_ids):
                stmt = select(*selected).where(among, t.c.state.in_(UNFINISHED_STATES))
                found.update(tuple(row) for row in conn.execute(stmt) if row[0] in wanted)
        return found

    def by_keys(self, keys: Sequence[str]) -> dict[str, R]:
        """The rows stored under these idempotency keys, by key."""
        column, found = self._t.c[self.spec.key_column], dict[str, R]()
        with self._engine.connect() as conn:
            for among in _sql.member_of(conn, column, keys):
                for row in conn.execute(select(self._t).where(among)).mappings():
                    found[row[self.spec.key_column]] = self.spec.row_type.from_mapping(row)
        return found

    def get(self, seqs: Sequence[int]) -> list[R]:
        """The rows with these seqs, in queue order."""
        rows: list[R] = []
        with self._engine.connect() as conn:
            for among in _sql.member_of(conn, self._t.c.seq, seqs):
                result = conn.execute(select(self._t).where(among))
                rows.extend(self.spec.row_type.from_mapping(row) for row in result.mappings())
        return sorted(rows, key=lambda row: row.seq)

    def counts(self) -> dict[str, int]:
        """Rows per state, every state present (zero included) so reports add up."""
        stmt = select(self._t.c.state, func.count()).group_by(self._t.c.state)
        with self._engine.connect() as conn:
            found = {state: count for state, count in conn.execute(stmt)}
        return {state: found.get(state, 0) for state in QUEUE_STATES}


def set_inflight(
    conn: Connection, table: Table, seqs: Sequence[int], job_id: str, *, owner: str | None = None
) -> int:
    """Move leased rows to inflight under ``job_id``, inside the caller's transaction; with
    ``owner``, only rows that owner still leases (a run whose lease ran out moves none)."""
    if not seqs:
        return 0
    dialect = conn.dialect.name
    stmt = _set_inflight_statement(table, dialect, owner is not None)
    params = {"seqs": _sql.member_values(dialect, seqs), "to_job": job_id, "owner": owner}
    return int(conn.execute(stmt, params).rowcount)


def _owned_by(t: Table, by: Any) -> ColumnElement[bool]:
    """Rows ``by`` (a lease owner or a job id; a value or a parameter) holds."""
    return or_(
        and_(t.c.state == "leased", t.c.lease_owner == by),
        and_(t.c.state == "inflight", t.c.job_id == by),
    )


def _leased_rows(row_type: type[R], columns: tuple[str, ...]) -> Callable[[Any, str, datetime], R]:
    """Builds a queued row from a selected one as the lease left it (a lease makes
    thousands: by position, not through a mapping per row)."""
    fields = list(row_type.__dataclass_fields__)
    positions = [columns.index(name) for name in fields]
    state, owner_at, expires_at = (fields.index(n) for n in _LEASED)

    def build(row: Any, owner: str, expires: datetime) -> R:
        values = [row[n] for n in positions]
        values[state], values[owner_at], values[expires_at] = "leased", owner, expires
        return row_type(*values)

    return build


_LEASED = ("state", "lease_owner", "lease_expires_at")


def ack_in(conn: Connection, t: Table, seqs: Sequence[int], by: str) -> int:
    """``Queue.ack`` on queue table ``t`` inside the caller's transaction."""
    if not seqs:
        return 0
    # The common transition (settling acks every record it accepted): built once.
    dialect = conn.dialect.name
    params = {"seqs": _sql.member_values(dialect, seqs), "by": by}
    return int(conn.execute(_ack_statement(t, dialect), params).rowcount)


@functools.cache
def _ack_statement(t: Table, dialect: str) -> Any:
    among = _sql.member_param(dialect, t.c.seq, "seqs")
    by = bindparam("by", type_=t.c.lease_owner.type)
    return update(t).where(among, _owned_by(t, by)).values(state="done", lease_expires_at=None)


@functools.cache
def _set_inflight_statement(t: Table, dialect: str, of_owner: bool) -> Any:
    mine = [t.c.lease_owner == bindparam("owner", type_=t.c.lease_owner.type)] if of_owner else []
    among = _sql.member_param(dialect, t.c.seq, "seqs")
    job = bindparam("to_job", type_=t.c.job_id.type)
    return (
        update(t)
        .where(among, t.c.state == "leased", *mine)
        .values(state="inflight", job_id=job, lease_expires_at=None)
    )
