"""Bulk jobs submitted to Attentive and the records each one carries.

A job is recorded the moment Attentive returns its id, before any waiting, together with
its items and the inflight marking of the queue rows it carries, in one transaction: a
crash after that point resumes polling the job instead of losing or re-sending it. A
backfill job's items are one document (``job_members``), so are a queue job's
(``job_documents``); any other job's are a row each.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Engine,
    Table,
    Text,
    bindparam,
    cast,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from attentive_sync.store import _sql, job_documents, job_members
from attentive_sync.store._lease import in_a_job
from attentive_sync.store.accepted import AcceptedAttribute, forget_in, record_in
from attentive_sync.store.db import json_text, json_value
from attentive_sync.store.errors import InvalidRecordError, JobAlreadyRecordedError, UnknownJobError
from attentive_sync.store.holds import JOB, JOB_HOLD, hold_in, hold_range_in, job_holder
from attentive_sync.store.queue import ack_in, set_inflight
from attentive_sync.store.tables import (
    JOB_KINDS,
    JOB_QUEUES,
    SOURCE_KINDS,
    bulk_job_items,
    bulk_jobs,
    customer_holds,
)
from attentive_sync.store.types import as_of, aware

SUBMITTED = "SUBMITTED"
UNSETTLED = bulk_jobs.c.settled.is_(False)


@dataclass(frozen=True, slots=True)
class JobItem:
    """One record of a bulk request, at its position in the request; ``source_ref`` points
    back to where it came from (a delta or event seq, a backfill member, a notice)."""

    customer_id: int
    source_kind: str
    source_ref: str
    attributes: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RecordedJob:
    """A bulk job as the store recorded it (Attentive's word on it: ``attentive.BulkJob``)."""

    job_id: str
    kind: str
    status: str
    submitted_at: datetime
    finished_at: datetime | None
    record_count: int
    accepted: int | None
    rejected: int | None
    settled: bool
    run_label: str | None
    settle_owner: str | None = None
    settle_expires_at: datetime | None = None


class JobRepository:
    """Record, follow and settle bulk jobs."""

    def __init__(
        self,
        engine: Engine,
        queues: Mapping[str, Table],
        carried_by_rows: Mapping[str, str] | None = None,
    ) -> None:
        """``queues``: the queue table of each source kind. ``carried_by_rows``: for a job
        kind whose customers leases find through the queue rows it carries (never through
        its items), the source kind of those rows."""
        self._engine = engine
        self._queues = queues
        self._carried_by_rows = dict(carried_by_rows or {})

    def record_job(
        self,
        job_id: str,
        kind: str,
        items: Sequence[JobItem],
        run_label: str | None = None,
        *,
        now: datetime | None = None,
    ) -> RecordedJob:
        """Record a submitted job, its items, and mark the queue rows it carries inflight.

        A job whose customers leases find through its queue rows, but not all of whose
        records are rows it moved inflight (its run's lease ran out meanwhile, or it
        carries other records), holds its customers itself until it settles."""
        _check_job(kind, items, self._queues.keys())
        now = as_of(now)
        with self._engine.begin() as conn:
            values = {
                "job_id": job_id,
                "kind": kind,
                "status": SUBMITTED,
                "submitted_at": now,
                "record_count": len(items),
                "settled": False,
                "run_label": run_label,
            }
            try:
                conn.execute(_INSERT_JOB, values)
            except IntegrityError as exc:
                # The only key of the row is the job id (the values are checked above).
                raise JobAlreadyRecordedError(f"bulk job {job_id} was already recorded") from exc
            queue_kind = self._carried_by_rows.get(kind)
            records = job_documents.document_of(items, queue_kind) if queue_kind else None
            members = None if records is not None else job_members.document_of(items)
            if records is not None:
                # One row for the whole job: its queue rows say whom it carries.
                job_documents.record_in(conn, job_id, records)
            elif members is None:
                _insert_items(conn, job_id, items)
            else:
                # One row for the whole job, and one range hold on its customers until it
                # settles (an unsettled job's items rows hold them otherwise).
                job_members.record_in(conn, job_id, members)
                hold_range_in(
                    conn,
                    members.first_customer,
                    members.last_customer,
                    job_holder(job_id),
                    JOB,
                    now + JOB_HOLD,
                )
            # Until the job settles, what Attentive holds for these attributes is unknown.
            forget_in(conn, ((i.customer_id, name) for i in items for name in i.attributes))
            moved = 0
            for source_kind, table in self._queues.items():
                refs = [int(i.source_ref) for i in items if i.source_kind == source_kind]
                if refs:
                    moved += set_inflight(conn, table, refs, job_id, owner=run_label)
            if kind in self._carried_by_rows and moved < len(items):
                customers = [i.customer_id for i in items]
                hold_in(conn, customers, job_holder(job_id), JOB, now + JOB_HOLD)
        return RecordedJob(
            job_id, kind, SUBMITTED, now, None, len(items), None, None, False, run_label
        )

    def get(self, job_id: str) -> RecordedJob:
        with self._engine.connect() as conn:
            found = conn.execute(_GET_JOB, {"the_job": job_id}).mappings().first()
        if found is None:
            raise UnknownJobError(f"no bulk job {job_id} was recorded")
        return RecordedJob(**found)

    def list_unsettled(self, kind: str | None = None) -> list[RecordedJob]:
        """Jobs whose results were not applied yet, oldest first: what a run resumes."""
        stmt = select(bulk_jobs).where(bulk_jobs.c.settled.is_(False))
        if kind is not None:
            stmt = stmt.where(bulk_jobs.c.kind == kind)
        stmt = stmt.order_by(bulk_jobs.c.submitted_at, bulk_jobs.c.job_id)
        with self._engine.connect() as conn:
            return [RecordedJob(**row) for row in conn.execute(stmt).mappings()]

    def update_status(
        self, job_id: str, status: str, *, finished_at: datetime | None = None
    ) -> None:
        """Store the latest status Attentive reported (a free string: kept as given)."""
        if finished_at is None:
            self._update(_SET_STATUS, {"the_job": job_id, "new_status": status})
            return
        finished = aware(finished_at, "finished_at")
        self._update(_SET_FINISHED, {"the_job": job_id, "new_status": status, "at": finished})

    def claim_for_settling(
        self,
        job_ids: Sequence[str],
        owner: str,
        seconds: float,
        *,
        now: datetime | None = None,
        finished: str | None = None,
    ) -> list[str]:
        """Take the right to settle these jobs for ``seconds``; returns those ``owner`` got.
        With ``finished``, the final status a poll just read: it is stored with the claim,
        and ``now`` as the finish time unless one is stored already (one write instead of
        a status update and then a claim).

        A job is settled by one run: one that another run holds an unexpired claim on,
        or that is settled already, is not returned. On PostgreSQL concurrent claims
        serialise on the job rows; on SQLite every write transaction does.
        """
        if finished is not None and len(job_ids) != 1:
            raise ValueError("a finished status is stored with the claim of one job")
        now = as_of(now)
        values = {
            "owner": owner,
            "now": now,
            "until": now + timedelta(seconds=seconds),
            "final_status": finished,
            "finished_now": now if finished is not None else None,
        }
        claimed: list[str] = []
        with self._engine.begin() as conn:
            if len(job_ids) == 1:
                # The usual call (one job, just before it is settled): a statement built once.
                params = {**values, "one_job": job_ids[0]}
                claimed.extend(conn.execute(_CLAIM_ONE, params).scalars())
            else:
                for among in _sql.member_of(conn, bulk_jobs.c.job_id, job_ids):
                    stmt = _claim(among)
                    claimed.extend(conn.execute(stmt, values).scalars())
        order = {job_id: n for n, job_id in enumerate(job_ids)}
        return sorted(claimed, key=order.__getitem__)

    def mark_settled(
        self,
        job_id: str,
        accepted: int,
        rejected: int,
        *,
        now: datetime | None = None,
        done: Sequence[JobItem] = (),
        values: Sequence[JobItem] = (),
    ) -> bool:
        """The job's per-record results were applied: it is settled. In the same
        transaction, the queue rows among ``done`` that the job carries are done, and
        the attributes of ``values`` go to the ledger of accepted values as of the job's
        submission (latest wins by submission time: a job that settles late must not
        overwrite a value that a job submitted after it already set). A hold the job took
        on its customers (see ``record_job``) ends with it.

        False, and nothing applied, when the job was settled already (a run whose claim
        ran out while it settled, and another run settled the job meanwhile): its values
        must not come back to a ledger that has forgotten them since."""
        params = {"the_job": job_id, "n_accepted": accepted, "n_rejected": rejected}
        with self._engine.begin() as conn:
            found = conn.execute(_MARK_SETTLED, {**params, "at": as_of(now)}).first()
            if found is None:
                if conn.execute(_GET_JOB, {"the_job": job_id}).first() is None:
                    raise UnknownJobError(f"no bulk job {job_id} was recorded")
                return False
            kind, submitted_at = found
            record_in(
                conn,
                (
                    AcceptedAttribute(item.customer_id, name, value, job_id, submitted_at)
                    for item in values
                    for name, value in item.attributes.items()
                ),
            )
            for source_kind, table in self._queues.items():
                seqs = [int(i.source_ref) for i in done if i.source_kind == source_kind]
                ack_in(conn, table, seqs, by=job_id)
            if kind in self._carried_by_rows:
                # By holder alone: few holds are kept at a time, and whatever took this
                # job's (recording it, a row parked while it ran) ends here.
                conn.execute(_END_JOB_HOLDS, {"holder": job_holder(job_id)})
            else:
                # The range hold of a job that keeps its members as one document.
                job_members.end_hold_in(conn, job_id)
        return True

    def items(self, job_id: str) -> list[JobItem]:
        """The job's records in request order (Attentive reports results by that index)."""
        with self._engine.connect() as conn:
            records = job_documents.of_job(conn, job_id)
            if records is not None:
                return [JobItem(*record) for record in records]
            members = job_members.of_job(conn, job_id)
            if members is not None:
                kind = job_members.MEMBER_KIND
                return [JobItem(cid, kind, ref, attrs) for cid, ref, attrs in members]
            rows = conn.execute(_ITEMS_OF_JOB, {"job_id": job_id}).tuples().all()
        # The attributes come as JSON text, decoded here in one pass: per row through the
        # column type, reading a job back cost more than recording it.
        attributes = _all_attributes([text for *_, text in rows])
        return [
            JobItem(customer_id, source_kind, source_ref, attrs)
            for (customer_id, source_kind, source_ref, _), attrs in zip(
                rows, attributes, strict=True
            )
        ]

    def carried(self, source_kind: str, refs: Sequence[str]) -> set[str]:
        """Which of ``refs`` any recorded job carries, settled or not (a backfill member
        is carried once: its job's settlement decides what follows for it)."""
        return self._carried(source_kind, refs, unsettled=False)

    def last_member_carried(self, run_key: str) -> int:
        """The highest customer id any recorded job carries as a member of the backfill
        run ``run_key`` (0: none). Beyond it, no member of a resumed run needs checking."""
        t = bulk_job_items.c
        stmt = select(func.max(t.customer_id)).where(
            t.source_kind == job_members.MEMBER_KIND,
            t.source_ref.startswith(f"{run_key}|", autoescape=True),
        )
        with self._engine.connect() as conn:
            in_rows = int(conn.scalar(stmt) or 0)
            return max(in_rows, job_members.last_customer_in(conn, run_key))

    def in_flight(self, source_kind: str, refs: Sequence[str]) -> set[str]:
        """Which of ``refs`` a job not settled yet carries: a retried send must skip them.

        A settled job no longer counts: its records were accepted, parked, or handed back
        for another attempt, and their own state says what happens next.
        """
        return self._carried(source_kind, refs, unsettled=True)

    def customers_in_flight(self, customer_ids: Sequence[int]) -> set[int]:
        """Which of ``customer_ids`` a job not settled yet carries: through its items rows,
        its members' document (``job_members``), or the queue rows it carries ``inflight``
        (``job_documents``; a job that could not move all of them holds its customers)."""
        if not customer_ids:
            return set()
        column = bulk_job_items.c.customer_id
        found = self._items_among(column, customer_ids, unsettled=True, ids=True)
        with self._engine.connect() as conn:
            found |= job_members.customers_in(conn, customer_ids)
            for table in JOB_QUEUES:
                for among in _sql.ids_among(conn, table.c.customer_id, customer_ids):
                    found.update(conn.execute(_inflight_customers(table).where(among)).scalars())
        return found.intersection(customer_ids)

    def _carried(self, source_kind: str, refs: Sequence[str], *, unsettled: bool) -> set[str]:
        """Which of ``refs`` a job's document or items rows carry (jobs not settled yet
        only, with ``unsettled``). Backfill members are kept as documents: the items rows
        are probed only when some are of ``source_kind`` (from before documents, or from
        odd refs). Queue rows are never asked about: their own state says whether a job
        carries them (``Queued.sendable``), and their jobs' documents are not looked in."""
        found: set[str] = set()
        if not refs:
            return found
        with self._engine.connect() as conn:
            if source_kind == job_members.MEMBER_KIND:
                found = job_members.carried_in(conn, refs, unsettled=unsettled)
            rows = conn.execute(_ROWS_OF_KIND, {"source_kind": source_kind}).first()
        if rows is not None:
            t = bulk_job_items.c
            where = t.source_kind == source_kind
            found |= self._items_among(t.source_ref, refs, where, unsettled=unsettled)
        return found

    def _items_among(
        self,
        column: ColumnElement[Any],
        values: Sequence[Any],
        *where: ColumnElement[bool],
        unsettled: bool = False,
        ids: bool = False,
    ) -> set[Any]:
        """The ``values`` of ``column`` that job items matching ``where`` hold (of jobs
        not settled yet only, with ``unsettled``). With ``ids`` (integer values), close
        values are read as one range, which may find values beyond ``values``.

        The job is looked up per item found (a correlated EXISTS), never the other way
        round: as a join, SQLite's planner prefers the index on ``settled`` and walks
        every item of every unsettled job (all of a backfill's until it settles) per call.
        """
        found: set[Any] = set()
        job = select(bulk_jobs.c.job_id).where(bulk_jobs.c.job_id == bulk_job_items.c.job_id)
        if unsettled:
            job = job.where(UNSETTLED)
        stmt = select(column).where(*where, job.exists())
        with self._engine.connect() as conn:
            among_values = _sql.ids_among if ids else _sql.member_of
            for among in among_values(conn, column, values):
                found.update(conn.execute(stmt.where(among)).scalars())
        return found

    def _update(self, stmt: Any, params: Mapping[str, Any]) -> None:
        """Run one of the job row's prebuilt updates (``the_job`` names the row)."""
        with self._engine.begin() as conn:
            result = conn.execute(stmt, params)
        if result.rowcount != 1:
            raise UnknownJobError(f"no bulk job {params['the_job']} was recorded")


def _check_job(kind: str, items: Sequence[JobItem], queue_kinds: Iterable[str]) -> None:
    if kind not in JOB_KINDS:
        raise InvalidRecordError(f"job kind must be one of {', '.join(JOB_KINDS)}, got {kind!r}")
    if not items:
        raise InvalidRecordError("a bulk job carries at least one record")
    try:
        # One encoding of the whole job (the JSON columns' own encoder); only a failure
        # looks for the culprit.
        json_text([dict(attributes) for attributes in _distinct(i.attributes for i in items)])
    except TypeError:
        for item in items:
            try:
                json_text(dict(item.attributes))
            except TypeError as exc:
                raise InvalidRecordError(
                    f"attributes of customer {item.customer_id}: {exc}"
                ) from exc
    for item in items:
        if item.source_kind not in SOURCE_KINDS:
            raise InvalidRecordError(f"unknown source_kind {item.source_kind!r}")
        if item.source_kind in queue_kinds and not item.source_ref.isdigit():
            raise InvalidRecordError(
                f"a {item.source_kind} source_ref is its queue seq, not {item.source_ref!r}"
            )


def _distinct(values: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Each distinct object once (records of one page share their audience flags)."""
    return list({id(value): value for value in values}.values())


def _claim(which: ColumnElement[bool]) -> Any:
    """Claim the unsettled jobs ``which`` selects that no other run holds an unexpired
    claim on (parameters: ``owner``, ``now``, ``until``; ``final_status`` and
    ``finished_now``, null unless a poll just saw the job finish)."""
    t = bulk_jobs.c
    owner = bindparam("owner", type_=t.settle_owner.type)
    now = bindparam("now", type_=t.settle_expires_at.type)
    free = or_(t.settle_owner.is_(None), t.settle_expires_at <= now, t.settle_owner == owner)
    until = bindparam("until", type_=t.settle_expires_at.type)
    final_status = bindparam("final_status", type_=t.status.type)
    finished_now = bindparam("finished_now", type_=t.finished_at.type)
    return (
        update(bulk_jobs)
        .where(which, t.settled.is_(False), free)
        .values(
            settle_owner=owner,
            settle_expires_at=until,
            status=func.coalesce(final_status, t.status),
            finished_at=func.coalesce(t.finished_at, finished_now),
        )
        .returning(t.job_id)
    )


# A plain INSERT, built once: unlike the dialects' ON CONFLICT form, SQLAlchemy caches its
# compiled form (recording runs it for every job).
_INSERT_JOB = insert(bulk_jobs)

# The job row's reads and updates run once per job and poll: built once (a statement built
# per call costs more to build and key than its execution).
_THE_JOB = bulk_jobs.c.job_id == bindparam("the_job", type_=bulk_jobs.c.job_id.type)
_AT = bindparam("at", type_=bulk_jobs.c.finished_at.type)
_NEW_STATUS = bindparam("new_status", type_=bulk_jobs.c.status.type)
_GET_JOB = select(bulk_jobs).where(_THE_JOB)
_SET_STATUS = update(bulk_jobs).where(_THE_JOB).values(status=_NEW_STATUS)
_SET_FINISHED = update(bulk_jobs).where(_THE_JOB).values(status=_NEW_STATUS, finished_at=_AT)
_MARK_SETTLED = (
    update(bulk_jobs)
    .where(_THE_JOB, UNSETTLED)
    .values(
        accepted=bindparam("n_accepted", type_=bulk_jobs.c.accepted.type),
        rejected=bindparam("n_rejected", type_=bulk_jobs.c.rejected.type),
        settled=True,
        settle_expires_at=None,
        # Keep the finish time the status poll saw; settling later must not move it.
        finished_at=func.coalesce(bulk_jobs.c.finished_at, _AT),
    )
    .returning(bulk_jobs.c.kind, bulk_jobs.c.submitted_at)
)

_END_JOB_HOLDS = delete(customer_holds).where(customer_holds.c.holder == bindparam("holder"))

# Spares a lookup by items rows when none could answer it (one index probe).
_ROWS_OF_KIND = (
    select(bulk_job_items.c.job_id)
    .where(bulk_job_items.c.source_kind == bindparam("source_kind"))
    .limit(1)
)

_CLAIM_ONE = _claim(bulk_jobs.c.job_id == bindparam("one_job", type_=bulk_jobs.c.job_id.type))

_ITEMS_OF_JOB = (
    select(
        bulk_job_items.c.customer_id,
        bulk_job_items.c.source_kind,
        bulk_job_items.c.source_ref,
        cast(bulk_job_items.c.attributes, Text),
    )
    .where(bulk_job_items.c.job_id == bindparam("job_id"))
    .order_by(bulk_job_items.c.idx)
)


@functools.cache
def _inflight_customers(t: Table) -> Any:
    """The customers of ``t``'s rows a job carries."""
    return select(t.c.customer_id).where(*in_a_job(t))


def _all_attributes(texts: Sequence[str]) -> list[Mapping[str, Any]]:
    """Items' attributes from their JSON texts: one document, read by the JSON columns'
    own decoder (and so with its care for long integers) in one call."""
    if not texts:
        return []
    return list(json_value("[" + ",".join(texts) + "]"))


_ITEM_COLUMNS = ("job_id", "idx", "customer_id", "source_kind", "source_ref", "attributes")


def _insert_items(conn: Connection, job_id: str, items: Sequence[JobItem]) -> None:
    rows = [
        (job_id, idx, item.customer_id, item.source_kind, item.source_ref, item.attributes)
        for idx, item in enumerate(items)
    ]
    _sql.insert_rows(conn, bulk_job_items, rows, _ITEM_COLUMNS)
