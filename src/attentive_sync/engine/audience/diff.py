"""Audience changes derived from membership: ``audience_members`` against what was last sent.

``changes_from`` in the export configuration says where enters and exits come from:
``queue`` (deltas a producer enqueues; the default), ``diff`` (this module, at the start of
every incremental run; a delta a producer queues sends what the table says when it goes)
or ``both`` (the queue, with the diff repairing whatever the queue missed).

The baseline is the sent membership (``store/sent_members.py``): the customers the engine
last handed to the delivery path as members. One store transaction per audience queues
the members not in it as ``enter`` deltas and the customers in it who are no longer
members as ``exit`` deltas, and moves the baseline with them, so a crash leaves both or
neither; the audience's row in ``audience_diffs`` is locked first, so two runs never
queue one change twice. It is set-based SQL: the membership is joined against the baseline in the
database, never walked in Python. A customer who entered and left between two runs is in
neither set and sends nothing. What follows the queue (mapping, batching, one job at a
time per customer, retries, the quarantine, the report) is the path every delta takes;
a queued change of the same customer goes first, in queue order.

The first diff of an audience seeds its baseline from what the engine already sent or
parked: the values Attentive accepted (the ledger), ``enter`` deltas not finished or in
the quarantine, backfill members a job not yet settled carries or the quarantine holds,
and members a backfill planned under this mode (a record parked for a person is not
queued again by every run). So a backfilled member is not sent again, and a member who
left before the diff took over gets their ``exit`` in its first run.

The SQL reads ``audience_members`` in the state store's database when the loyalty source
is that database; a source elsewhere is first copied, one page at a time, into a
temporary table of the store's connection, and joined there.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    MetaData,
    String,
    Table,
    cast,
    delete,
    exists,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.engine import Connection

from attentive_sync.domain.export_config import ExportConfig
from attentive_sync.engine.audience import staging
from attentive_sync.engine.delivery.kinds import BackfillMember, is_rebuilt
from attentive_sync.engine.report import Report
from attentive_sync.engine.runtime import Runtime
from attentive_sync.sources.schema import audience_members
from attentive_sync.store import _sql
from attentive_sync.store.job_members import unsettled_members_in
from attentive_sync.store.tables import (
    UNFINISHED_STATES,
    accepted_attributes,
    audience_deltas,
    audience_diffs,
    audience_sent_members,
    bulk_job_items,
    bulk_jobs,
    quarantine,
)
from attentive_sync.store.types import UtcDateTime, as_of

DIFF_PREFIX = "diff:"
_scratch = MetaData()
_changes = Table(
    "audience_diff_changes",
    _scratch,
    Column("customer_id", BigInteger, primary_key=True),
    Column("action", String(8), nullable=False),
    prefixes=["TEMPORARY"],
)


@dataclass
class DiffOutcome:
    enters: int = 0
    exits: int = 0
    seeded: int = 0


def add_to(report: Report, outcome: DiffOutcome) -> None:
    report.add("diff_enters", outcome.enters)
    report.add("diff_exits", outcome.exits)
    if outcome.seeded:
        report.notes.append(f"the membership diff took over {outcome.seeded} audience(s)")


def follows_source(config: ExportConfig, delta_key: str) -> bool:
    """Whether a queued delta sends what the source says when it goes, whatever its action:
    one the engine rebuilt from the source, and under ``diff`` a producer's too (the table
    is the truth there; the delta only says when to look, so a change the backfill left
    to the queue is never lost)."""
    if is_rebuilt(delta_key):
        return True
    return config.changes_from == "diff" and not delta_key.startswith(DIFF_PREFIX)


def plans_backfill_members(config: ExportConfig) -> bool:
    """Whether a backfill records the members it plans in the sent membership."""
    return config.changes_from != "queue"


def queue_membership_changes(
    runtime: Runtime, config: ExportConfig, now: datetime | None = None
) -> DiffOutcome:
    """Queue each exported audience's enters and exits since the last diff."""
    outcome = DiffOutcome()
    if config.changes_from == "queue":
        return outcome
    now = as_of(now)
    shared = shares_database(runtime)
    for audience in config.audiences:
        with runtime.store.engine.begin() as conn:
            generation, fresh = _take(conn, audience, now)
            if fresh:
                _seed(conn, audience)
                outcome.seeded += 1
            members = _members(conn, runtime, audience, shared)
            enters, exits = _diff(
                conn, audience, members, _key_prefix(audience, generation, now), now
            )
            conn.execute(
                update(audience_diffs)
                .where(audience_diffs.c.audience == audience)
                .values(generation=generation + 1, diffed_at=now, enters=enters, exits=exits)
            )
            if not shared:
                staging.drop_staged(conn)
        outcome.enters += enters
        outcome.exits += exits
    return outcome


def shares_database(runtime: Runtime) -> bool:
    """Whether the loyalty source is the state store's own database."""
    source = runtime.source.url.render_as_string(hide_password=False)
    return source == runtime.store.engine.url.render_as_string(hide_password=False)


def _take(conn: Connection, audience: str, now: datetime) -> tuple[int, bool]:
    """Lock the audience's diff row (created on its first diff): (generation, created)."""
    t = audience_diffs
    stmt = _sql.upsert_insert(conn, t).values(audience=audience, generation=0, seeded_at=now)
    stmt = stmt.on_conflict_do_nothing(index_elements=[t.c.audience]).returning(t.c.audience)
    created = conn.execute(stmt).first() is not None
    locked = select(t.c.generation).where(t.c.audience == audience).with_for_update()
    return int(conn.execute(locked).scalar_one()), created


def _seed(conn: Connection, audience: str) -> None:
    """The baseline of an audience the diff takes over: every ``true`` the engine sent
    or parked."""
    sent, ledger, deltas = audience_sent_members, accepted_attributes, audience_deltas
    accepted = select(literal(audience, String), ledger.c.customer_id).where(
        ledger.c.name == audience, cast(ledger.c.value, String) == "true"
    )
    queued = (
        select(literal(audience, String), deltas.c.customer_id)
        .where(
            deltas.c.audience == audience,
            deltas.c.action == "enter",
            deltas.c.state.in_((*UNFINISHED_STATES, "quarantined")),
        )
        .distinct()
    )
    for chosen in (accepted, queued):
        stmt = _sql.upsert_insert(conn, sent).from_select(["audience", "customer_id"], chosen)
        conn.execute(
            stmt.on_conflict_do_nothing(index_elements=[sent.c.audience, sent.c.customer_id])
        )
    items = bulk_job_items.c
    unsettled = (
        select(items.source_ref, items.customer_id)
        .join(bulk_jobs, bulk_jobs.c.job_id == items.job_id)
        .where(items.source_kind == BackfillMember.source_kind, bulk_jobs.c.settled.is_(False))
    )
    q = quarantine.c
    parked = select(q.source_ref, q.customer_id).where(
        q.source_kind == BackfillMember.source_kind, q.replayed_at.is_(None)
    )
    carried = [
        {"audience": audience, "customer_id": cid}
        for found in (conn.execute(unsettled), unsettled_members_in(conn), conn.execute(parked))
        for ref, cid in found
        if audience in BackfillMember.audiences(ref)
    ]
    for chunk in _sql.chunks(carried, 5_000):
        stmt = _sql.upsert_insert(conn, sent).on_conflict_do_nothing(
            index_elements=[sent.c.audience, sent.c.customer_id]
        )
        conn.execute(stmt, chunk)


@dataclass(frozen=True)
class _Members:
    """The audience's membership as the diff's SQL reads it: a table and a filter."""

    customer_id: ColumnElement[Any]
    where: tuple[ColumnElement[bool], ...]


def _members(conn: Connection, runtime: Runtime, audience: str, shared: bool) -> _Members:
    if shared:
        m = audience_members.c
        return _Members(m.customer_id, (m.audience_slug == audience,))
    staged = staging.stage_members(runtime.source, conn, audience)
    return _Members(staged.c.customer_id, ())


def _key_prefix(audience: str, generation: int, now: datetime) -> str:
    """Delta keys of one diff of one audience: unique (the time too, should the diff's row
    ever be dropped and its generations start over), and short whatever the slug."""
    text = f"{audience}\x1f{generation}\x1f{now.isoformat()}"
    token = hashlib.sha256(text.encode()).hexdigest()[:24]
    return f"{DIFF_PREFIX}{token}:"


def _diff(
    conn: Connection, audience: str, members: _Members, prefix: str, now: datetime
) -> tuple[int, int]:
    """Queue the audience's enters and exits and move the baseline; (enters, exits)."""
    sent = audience_sent_members.c
    was_sent = exists().where(sent.audience == audience, sent.customer_id == members.customer_id)
    is_member = exists().where(*members.where, members.customer_id == sent.customer_id)
    enters = (
        select(members.customer_id, literal("enter", String))
        .where(*members.where, ~was_sent)
        .distinct()
    )
    exits = select(sent.customer_id, literal("exit", String)).where(
        sent.audience == audience, ~is_member
    )
    _changes.create(conn)
    for chosen in (enters, exits):
        conn.execute(insert(_changes).from_select(["customer_id", "action"], chosen))
    change = _changes.c
    at = literal(now, UtcDateTime())
    queued = select(
        literal(prefix, String) + cast(change.customer_id, String),
        literal(audience, String),
        change.action,
        change.customer_id,
        at,
        at,
        at,
    ).order_by(change.customer_id)
    columns = [
        "delta_key",
        "audience",
        "action",
        "customer_id",
        "occurred_at",
        "enqueued_at",
        "next_attempt_at",
    ]
    conn.execute(insert(audience_deltas).from_select(columns, queued))
    entered = select(literal(audience, String), change.customer_id).where(change.action == "enter")
    conn.execute(insert(audience_sent_members).from_select(["audience", "customer_id"], entered))
    exited = select(change.customer_id).where(change.action == "exit")
    conn.execute(
        delete(audience_sent_members).where(sent.audience == audience, sent.customer_id.in_(exited))
    )
    grouped = select(change.action, func.count()).group_by(change.action)
    counts: dict[str, int] = {action: n for action, n in conn.execute(grouped)}
    _changes.drop(conn)
    return int(counts.get("enter", 0)), int(counts.get("exit", 0))
