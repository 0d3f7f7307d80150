"""Submitting batches: every accepted part recorded at once, uncertain answers held.

Attentive answers a malformed *envelope* with a whole-request 400. Local validation should
make that impossible, but if it ever happens the batch is split in halves until the bad
record(s) stand alone: 255 good users are never dropped for one bad one.

When an attempt fails in a way that may still have created a job at Attentive (a lost
answer, a 5xx), the batch's customers are held for ``uncertain_hold_seconds``: no newer
write of theirs is submitted until such an unrecorded job can no longer land after it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Generic, TypeVar

from attentive_sync.attentive import AttentiveClient, RequestRejected, RetryableError, StopRun
from attentive_sync.domain.errors import REJECTED_BY_ATTENTIVE
from attentive_sync.domain.users import BulkUser
from attentive_sync.engine.delivery.kinds import lifecycle
from attentive_sync.engine.runtime import Runtime
from attentive_sync.engine.stages import stage
from attentive_sync.store.jobs import JobItem
from attentive_sync.store.types import utcnow

UNCERTAIN = "uncertain"
# One user record as the bulk endpoint takes it (``BulkUser.to_wire()``).
Wire = dict[str, Any]
U = TypeVar("U", BulkUser, Wire)


def wire_of(user: BulkUser | Wire) -> Wire:
    return user if isinstance(user, dict) else user.to_wire()


@dataclass(frozen=True)
class Batch:
    """Users for one bulk request, already in wire shape, and, position by position, where
    each came from (the typed ``BulkUser`` stays at the edges: mapping and tests)."""

    users: tuple[Wire, ...]
    items: tuple[JobItem, ...]
    # Users sent without the invalid email their source holds (for the run report).
    dropped_emails: int = 0

    def __post_init__(self) -> None:
        if len(self.users) != len(self.items):
            raise ValueError("a batch needs one job item per user")


def make_batch(pairs: Sequence[tuple[BulkUser | Wire, JobItem]]) -> Batch:
    dropped = sum(
        1 for u, _ in pairs if not isinstance(u, dict) and "email" in u.identifiers.dropped
    )
    return Batch(tuple(wire_of(u) for u, _ in pairs), tuple(i for _, i in pairs), dropped)


def make_batches(pairs: Sequence[tuple[BulkUser | Wire, JobItem]], size: int = 256) -> list[Batch]:
    return [make_batch(pairs[i : i + size]) for i in range(0, len(pairs), size)]


@dataclass
class SendResult:
    job_ids: list[str] = field(default_factory=list)
    records_sent: int = 0
    rejected: int = 0
    requests: int = 0
    uncertain: int = 0
    # Left out by the records' own state: carried by a recorded job already, no longer
    # the run's, no longer true at the source, or queued behind a write in flight.
    held_back: int = 0


@dataclass(frozen=True)
class SubmittedJob(Generic[U]):
    job_id: str
    users: tuple[U, ...]


@dataclass
class SubmitOutcome(Generic[U]):
    jobs: list[SubmittedJob[U]] = field(default_factory=list)
    rejected: list[tuple[U, str]] = field(default_factory=list)
    requests: int = 0

    def merge(self, other: SubmitOutcome[U]) -> SubmitOutcome[U]:
        self.jobs.extend(other.jobs)
        self.rejected.extend(other.rejected)
        self.requests += other.requests
        return self


def submit_isolating(
    client: AttentiveClient,
    users: Sequence[U],
    on_job: Callable[[SubmittedJob[U]], None] = lambda job: None,
    on_uncertain: Callable[[Sequence[U]], None] = lambda users: None,
) -> SubmitOutcome[U]:
    """Submit one batch; on a whole-request 400, bisect until the culprits are isolated.

    ``on_job`` runs as soon as Attentive accepts a part, before the next part goes: if a
    later part fails, what was already accepted is on record. ``on_uncertain`` runs when
    an attempt at a part may have left a job nobody recorded. Retryable errors propagate:
    their owner is the client (seconds) or the caller (later).
    """
    outcome: SubmitOutcome[U] = SubmitOutcome(requests=1)
    try:
        with stage("encode and submit"):
            job_id = client.submit_bulk_users(
                [wire_of(u) for u in users], on_uncertain=lambda: on_uncertain(users)
            )
    except RequestRejected as exc:
        if len(users) == 1:
            outcome.rejected.append((users[0], str(exc)))
            return outcome
        middle = len(users) // 2
        outcome.merge(submit_isolating(client, users[:middle], on_job, on_uncertain))
        return outcome.merge(submit_isolating(client, users[middle:], on_job, on_uncertain))
    job = SubmittedJob(job_id, tuple(users))
    on_job(job)
    outcome.jobs.append(job)
    return outcome


def _by_kind(items: Sequence[JobItem]) -> dict[str, list[JobItem]]:
    kinds: dict[str, list[JobItem]] = {}
    for item in items:
        kinds.setdefault(item.source_kind, []).append(item)
    return kinds


Allowed = set[tuple[str, str]]


def allowed_now(runtime: Runtime, items: Sequence[JobItem], owner: str) -> Allowed:
    """``(source_kind, source_ref)`` of the records that may go now: each kind's own state
    says (a retried send leaves out what a recorded job carries; a queue row must still be
    ``owner``'s). Checked once for a whole group of batches: the reads and the holds cost
    per statement far more than per record."""
    return {
        (kind, ref)
        for kind, group in _by_kind(items).items()
        for ref in lifecycle(group[0]).sendable(runtime, [i.source_ref for i in group], owner)
    }


def sendable(batch: Batch, allowed: Allowed) -> list[tuple[Wire, JobItem]]:
    """The batch's records that may go now (``allowed``: checked already, for its group)."""
    return [
        (user, item)
        for user, item in zip(batch.users, batch.items, strict=True)
        if (item.source_kind, item.source_ref) in allowed
    ]


@dataclass
class _Checked:
    """Records checked together, and which of them may go. What the checks hold ends when
    their sends are over, unless a send was cut short before the customers of what it may
    have sent were held on their own (``hold_uncertain``): then it ends by itself."""

    allowed: Allowed
    keep: bool = False

    def send(self, runtime: Runtime, batch: Batch, kind: str, owner: str) -> SendResult:
        with stage("send checks"):
            pending = sendable(batch, self.allowed)
        try:
            result = _submit(runtime, pending, kind, owner)
        except (RetryableError, StopRun):
            # Nothing was sent, or the client held what may have been (``on_uncertain``).
            raise
        except Exception:
            try:
                hold_uncertain(runtime, [item for _, item in pending])
            except BaseException:
                self.keep = True
                raise
            raise
        except BaseException:
            # Interrupted mid-send: nothing held what may have gone.
            self.keep = True
            raise
        result.held_back = len(batch.users) - len(pending)
        return result


@contextmanager
def _checks_held(runtime: Runtime, items: Sequence[JobItem], owner: str) -> Iterator[_Checked]:
    """Check ``items`` together (``allowed_now``) and, once their sends are over, let go of
    what the checks held (see ``_Checked``)."""
    try:
        with stage("send checks"):
            checked = _Checked(allowed_now(runtime, items, owner))
    except BaseException:
        # The checks may have held some of the customers: hand them back.
        _after_send(runtime, items, owner)
        raise
    try:
        yield checked
    finally:
        if not checked.keep:
            _after_send(runtime, items, owner)


def _after_send(runtime: Runtime, items: Sequence[JobItem], owner: str) -> None:
    if not items:
        return
    with stage("after send"):
        for group in _by_kind(items).values():
            lifecycle(group[0]).after_send(runtime, group, owner)


def hold_uncertain(runtime: Runtime, items: Sequence[JobItem]) -> int:
    """Hold these records' customers for ``uncertain_hold_seconds`` and forget what the
    ledger says Attentive holds for their attributes: a job may carry them unrecorded."""
    until = utcnow() + timedelta(seconds=runtime.sync.uncertain_hold_seconds)
    holder = f"{UNCERTAIN}:{uuid.uuid4().hex}"
    runtime.store.holds.hold([item.customer_id for item in items], holder, UNCERTAIN, until)
    runtime.store.accepted.forget(
        (item.customer_id, name) for item in items for name in item.attributes
    )
    return len(items)


def _submit(
    runtime: Runtime, pending: list[tuple[Wire, JobItem]], kind: str, owner: str
) -> SendResult:
    """Submit ``pending``, recording each job the moment Attentive returns its id."""
    by_user = {id(u): item for u, item in pending}
    result = SendResult()
    if not pending:
        return result

    def record(job: SubmittedJob[Wire]) -> None:
        items = [by_user[id(u)] for u in job.users]
        with stage("record job"):
            runtime.store.jobs.record_job(job.job_id, kind, items, owner)
        result.job_ids.append(job.job_id)
        result.records_sent += len(items)

    def hold(users: Sequence[Wire]) -> None:
        result.uncertain += hold_uncertain(runtime, [by_user[id(u)] for u in users])

    outcome = submit_isolating(runtime.client, [u for u, _ in pending], record, hold)
    result.requests = outcome.requests
    for user, message in outcome.rejected:
        item = by_user[id(user)]
        lifecycle(item).rejected(runtime, item, REJECTED_BY_ATTENTIVE, message, user, owner)
        result.rejected += 1
    return result


def send_batches(
    runtime: Runtime, batches: list[Batch], kind: str, owner: str, workers: int
) -> list[SendResult]:
    """Submit what of each batch may go now and record every job it became: on ``workers``
    threads (the shared rate limiter paces them), the records checked together first and
    let go together once every batch is over.

    Retryable errors propagate so the caller's retry owner can act (a retry of the whole
    group sends only what no recorded job carries yet); records Attentive refused outright
    go through their lifecycle with its message. A failure that may have left a job at
    Attentive unrecorded (an uncertain answer, a job that could not be recorded, an answer
    without a job id) holds the batch's customers, so no newer write of theirs overtakes it.
    """
    if not batches:
        return []
    with _checks_held(runtime, [i for b in batches for i in b.items], owner) as checked:
        if workers <= 1 or len(batches) == 1:
            # A failure stops the group: the batches after it are not sent now.
            return [checked.send(runtime, batch, kind, owner) for batch in batches]
        # Every batch is started; a failure is raised once all are over.
        with ThreadPoolExecutor(min(workers, len(batches)), thread_name_prefix="bulk-send") as pool:
            return list(pool.map(lambda batch: checked.send(runtime, batch, kind, owner), batches))
