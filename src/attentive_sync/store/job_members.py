"""A backfill job's members as one document (``backfill_job_members``).

A backfill job carries up to 256 members of one run, read in customer order. Written one
``bulk_job_items`` row per member (three B-trees each), recording them cost more than any
other stage of a backfill; one row per job costs one insert. The document keeps, in request
order, each member's customer id, the audiences its ref lists and its attributes (shared
attribute objects once), and gives back exactly the ``JobItem`` values it was made from:
a member ref is ``{run_key}|{audiences}|{customer_id}``, and a job whose items do not all
read back that way is recorded as rows instead.

The run key and the job's first and last customer id are columns: a resumed run or a send
check finds the documents that may carry its refs by run and customer range (an index
probe), and reads only those. While the job is unsettled, one range hold on the customer
holds (``job:<job id>``, from the first to the last customer) holds its customers back
from leases, as an items row of an unsettled job does; it ends with the settlement.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import bindparam, delete, insert, select
from sqlalchemy.engine import Connection

from attentive_sync.store.db import json_text, json_value
from attentive_sync.store.holds import HOLDER_LENGTH, JOB, job_holder
from attentive_sync.store.tables import backfill_job_members, bulk_jobs, customer_holds

MEMBER_KIND = "backfill"
# A job's range hold is named ``job_holder(job_id)``: this prefix, then the job id.
_HOLDER = job_holder("")


class ItemLike(Protocol):
    """What a document is made from: a ``JobItem`` (``jobs`` imports this module)."""

    @property
    def customer_id(self) -> int: ...
    @property
    def source_kind(self) -> str: ...
    @property
    def source_ref(self) -> str: ...
    @property
    def attributes(self) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class Members:
    """What a job carries, ready to store: its run, its customer range and the document."""

    run_key: str
    first_customer: int
    last_customer: int
    text: str


def member_ref(run_key: str, listed: str, customer_id: int) -> str:
    return f"{run_key}|{listed}|{customer_id}"


def split_ref(ref: str) -> tuple[str, str, int] | None:
    """``(run_key, audiences as listed, customer_id)`` of a member ref that reads back to
    itself; None for any other ref."""
    head, bar, customer = ref.rpartition("|")
    run_key, bar2, listed = head.rpartition("|")
    try:
        cid = int(customer)
    except ValueError:
        return None
    if not (bar and bar2) or member_ref(run_key, listed, cid) != ref:
        return None
    return run_key, listed, cid


def document_of(items: Sequence[ItemLike]) -> Members | None:
    """The items as one document, when every one is a member of one backfill run whose
    ref reads back to it; None otherwise (they are recorded as rows)."""
    parts = split_ref(items[0].source_ref) if items else None
    if parts is None:
        return None
    run_key = parts[0]
    head = f"{run_key}|"
    start = len(head)
    members: list[list[Any]] = []
    shared: dict[int, int] = {}
    attributes: list[Mapping[str, Any]] = []
    for item in items:
        # ``split_ref`` of each ref, in fewer steps: the run's head, the customer's tail,
        # and between them audiences without a ``|``.
        ref, tail = item.source_ref, f"|{item.customer_id}"
        listed = ref[start : len(ref) - len(tail)]
        if (
            item.source_kind != MEMBER_KIND
            or not ref.startswith(head)
            or not ref.endswith(tail)
            or len(ref) < start + len(tail)
            or "|" in listed
        ):
            return None
        # The items are alive for the whole call, so an object's id names it.
        which = shared.setdefault(id(item.attributes), len(attributes))
        if which == len(attributes):
            attributes.append(item.attributes)
        members.append([item.customer_id, listed, which])
    customers = [member[0] for member in members]
    text = json_text({"attributes": [dict(a) for a in attributes], "members": members})
    return Members(run_key, min(customers), max(customers), text)


def decoded(run_key: str, text: str) -> list[tuple[int, str, Mapping[str, Any]]]:
    """``(customer_id, source_ref, attributes)`` of each member, in request order."""
    document = json_value(text)
    shared = document["attributes"]
    return [
        (cid, member_ref(run_key, listed, cid), shared[which])
        for cid, listed, which in document["members"]
    ]


def record_in(conn: Connection, job_id: str, members: Members) -> None:
    conn.execute(
        _INSERT,
        {
            "job_id": job_id,
            "run_key": members.run_key,
            "first_customer": members.first_customer,
            "last_customer": members.last_customer,
            "members": members.text,
        },
    )


def of_job(conn: Connection, job_id: str) -> list[tuple[int, str, Mapping[str, Any]]] | None:
    """The job's members in request order, or None when it keeps no document."""
    found = conn.execute(_OF_JOB, {"job_id": job_id}).first()
    return None if found is None else decoded(found.run_key, found.members)


def end_hold_in(conn: Connection, job_id: str) -> None:
    """End the range hold a job with a document took on its customers."""
    conn.execute(_END_HOLD, {"job_id": job_id, "holder": job_holder(job_id)})


def carried_in(conn: Connection, refs: Iterable[str], *, unsettled: bool = False) -> set[str]:
    """Which of ``refs`` (member refs) a job's document carries (of jobs not settled yet
    only, with ``unsettled``): per run, the documents over the refs' customer range."""
    wanted: dict[str, dict[str, int]] = {}
    for ref in refs:
        # Only the run and the customer, to know where to look: a document holds only
        # refs that read back to themselves, and what it holds is matched whole.
        head, _, customer = ref.rpartition("|")
        try:
            cid = int(customer)
        except ValueError:
            continue
        wanted.setdefault(head.rpartition("|")[0], {})[ref] = cid
    found: set[str] = set()
    stmt = _OVER_UNSETTLED if unsettled else _OVER
    for run_key, of_run in wanted.items():
        params = {"run_key": run_key, "low": min(of_run.values()), "high": max(of_run.values())}
        for text in conn.execute(stmt, params).scalars():
            found.update(ref for _, ref, _ in decoded(run_key, text) if ref in of_run)
    return found


def customers_in(conn: Connection, customer_ids: Sequence[int]) -> set[int]:
    """Which of ``customer_ids`` the document of a job not settled yet carries.

    The unsettled jobs over the ids are found by their range holds (the partial index of
    the few range rows, which a job's settlement ends), never by walking every unsettled
    job: a backfill may have thousands waiting to settle while it sends.
    """
    if not customer_ids:
        return set()
    params = {"low": min(customer_ids), "high": max(customer_ids)}
    holders = conn.execute(_JOB_RANGES_OVER, params).scalars().all()
    jobs = [holder.removeprefix(_HOLDER) for holder in holders if holder.startswith(_HOLDER)]
    asked = set(customer_ids)
    found: set[int] = set()
    for job in jobs:
        # A holder name is cut at 200 characters: a job id that long is found by prefix.
        if len(_HOLDER + job) >= HOLDER_LENGTH:
            stmt = select(_m.run_key, _m.members).where(_m.job_id.startswith(job, autoescape=True))
        else:
            stmt = _OF_JOB.params(job_id=job)
        for run_key, text in conn.execute(stmt).tuples():
            found.update(cid for cid, _, _ in decoded(run_key, text) if cid in asked)
    return found


def last_customer_in(conn: Connection, run_key: str) -> int:
    """The highest customer id a document of ``run_key`` carries (0: none)."""
    return int(conn.execute(_LAST_OF_RUN, {"run_key": run_key}).scalar() or 0)


def unsettled_members_in(conn: Connection) -> Iterator[tuple[str, int]]:
    """``(source_ref, customer_id)`` of every member a job not settled yet carries."""
    for run_key, text in conn.execute(_UNSETTLED).tuples():
        for cid, ref, _ in decoded(run_key, text):
            yield ref, cid


# Built once: recording and settling run these per job.
_m, _j, _h = backfill_job_members.c, bulk_jobs.c, customer_holds.c
_INSERT = insert(backfill_job_members)
_OF_JOB = select(_m.run_key, _m.members).where(_m.job_id == bindparam("job_id"))
_END_HOLD = delete(customer_holds).where(
    _h.holder == bindparam("holder"),
    _h.customer_id
    == select(_m.first_customer).where(_m.job_id == bindparam("job_id")).scalar_subquery(),
)
_OVER = select(_m.members).where(
    _m.run_key == bindparam("run_key"),
    _m.last_customer >= bindparam("low"),
    _m.first_customer <= bindparam("high"),
)
_UNSETTLED_JOB = select(_j.job_id).where(_j.job_id == _m.job_id, _j.settled.is_(False)).exists()
_OVER_UNSETTLED = _OVER.where(_UNSETTLED_JOB)
# From the unsettled jobs (few, by the index on ``settled``) to their documents.
_UNSETTLED = (
    select(_m.run_key, _m.members)
    .join(bulk_jobs, _j.job_id == _m.job_id)
    .where(_j.settled.is_(False))
)
_JOB_RANGES_OVER = select(_h.holder).where(
    _h.through.is_not(None),
    _h.through >= bindparam("low"),
    _h.customer_id <= bindparam("high"),
    _h.reason == JOB,
)
_LAST_OF_RUN = (
    select(_m.last_customer)
    .where(_m.run_key == bindparam("run_key"))
    .order_by(_m.last_customer.desc())
    .limit(1)
)
