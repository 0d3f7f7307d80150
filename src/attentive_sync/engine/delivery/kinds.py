"""What happens to each kind of record on send, accept, retry-later and give-up.

Every record a bulk job carries is a ``JobItem`` whose ``source_kind`` names its
lifecycle here, and nowhere else does code ask which kind a record is:

- queued records (audience deltas, attribute writes, loyalty events): the row's own state
  decides. Sendable while its run holds it; accepted -> done; retry -> back to pending
  with backoff, or the quarantine once attempts run out; refused -> the quarantine.
- backfill members: read from the source, carried by one job, and sent only while no
  other write of their customer is unfinished. Retry (or a member held back behind such a
  write) -> a rebuilt delta at the back of the queue, which sends the source's membership
  as it is when it goes; refused -> the quarantine, whose replay rebuilds the member the
  same way.
- ``notice`` and ``profile`` items of jobs recorded before attribute writes were queued:
  settled as they were then (retry -> the quarantine, whose replay rebuilds them).

Two moves belong to the store, each in the one transaction of its job: the queue rows a
job carries go inflight when it is recorded, and those it got accepted are done when it
settles (``JobRepository.record_job`` and ``mark_settled``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Engine

from attentive_sync.engine.delivery.retry import RETRIES_EXHAUSTED, RetryPolicy
from attentive_sync.engine.runtime import Runtime
from attentive_sync.sources.loyalty import is_member, members_among
from attentive_sync.store.job_members import member_ref
from attentive_sync.store.jobs import JobItem
from attentive_sync.store.queue import Queue
from attentive_sync.store.records import NewDelta
from attentive_sync.store.tables import REF_LENGTH
from attentive_sync.store.types import utcnow

JOB_FAILED = "job_failed"


@dataclass
class RetryOutcome:
    retried: int = 0
    parked: int = 0

    def add(self, other: RetryOutcome) -> None:
        self.retried += other.retried
        self.parked += other.parked


class Lifecycle(Protocol):
    def sendable(self, runtime: Runtime, refs: Sequence[str], owner: str) -> set[str]:
        """Which of ``refs`` may be submitted now by ``owner`` (a retried send skips the
        ones a recorded job carries already)."""

    def retry_later(
        self, runtime: Runtime, failed: Sequence[tuple[JobItem, str]], by: str, now: datetime
    ) -> RetryOutcome: ...

    def rejected(
        self, runtime: Runtime, item: JobItem, code: str, detail: str, payload: Any, by: str
    ) -> None: ...

    def after_send(self, runtime: Runtime, items: Sequence[JobItem], owner: str) -> None:
        """Called once for the records one ``sendable`` call was given (``items``, the same
        records), when their sends are over or the checks failed: let go of what the
        checks held. Not called when a send was cut short before what it may have sent
        was held on its own: then what the checks hold ends by itself."""


@dataclass(frozen=True)
class Queued:
    """A row of one of the store's queues; ``by`` is its lease owner or carrying job."""

    queue_name: str

    def queue(self, runtime: Runtime) -> Queue[Any, Any]:
        return runtime.store.queues[self.queue_name]

    def sendable(self, runtime: Runtime, refs: Sequence[str], owner: str) -> set[str]:
        owned = self.queue(runtime).owned([int(r) for r in refs], owner)
        return {str(seq) for seq in owned}

    def after_send(self, runtime: Runtime, items: Sequence[JobItem], owner: str) -> None:
        """Nothing to undo: the lease was the hold."""

    def retry_later(
        self, runtime: Runtime, failed: Sequence[tuple[JobItem, str]], by: str, now: datetime
    ) -> RetryOutcome:
        return retry_rows(
            self.queue(runtime),
            {int(item.source_ref): reason for item, reason in failed},
            RetryPolicy.from_settings(runtime.sync),
            by,
            now,
        )

    def rejected(
        self, runtime: Runtime, item: JobItem, code: str, detail: str, payload: Any, by: str
    ) -> None:
        seq = int(item.source_ref)
        payloads = {seq: payload} if payload is not None else None
        self.queue(runtime).quarantine([seq], code, detail, by=by, payloads=payloads)


def retry_rows(
    queue: Queue[Any, Any], reasons: dict[int, str], policy: RetryPolicy, by: str, now: datetime
) -> RetryOutcome:
    """Rows ``by`` holds back to pending with backoff, or parked once attempts run out."""
    outcome = RetryOutcome()
    for row in queue.get(list(reasons)):
        retry_at = policy.next_attempt(row.attempts, now)
        reason = reasons[row.seq]
        if retry_at is None:
            detail = policy.exhausted_detail(reason)
            outcome.parked += queue.quarantine([row.seq], RETRIES_EXHAUSTED, detail, by=by)
        else:
            outcome.retried += queue.nack([row.seq], reason, retry_at, by=by)
    return outcome


def release_leases(runtime: Runtime, owner: str, error: str, now: datetime) -> RetryOutcome:
    """Hand back every row ``owner`` still leases in any queue (its run failed): each counts
    the attempt and keeps the error, then waits its backoff or, out of attempts, is parked."""
    outcome = RetryOutcome()
    policy = RetryPolicy.from_settings(runtime.sync)
    for queue in runtime.store.queues.values():
        seqs = queue.leased_by(owner)
        if seqs:
            outcome.add(retry_rows(queue, dict.fromkeys(seqs, error), policy, owner, now))
    return outcome


def by_audience(records: Iterable[tuple[int, Iterable[str]]]) -> dict[str, list[int]]:
    """Customer ids by audience, from ``(customer_id, their audiences)`` pairs."""
    grouped: dict[str, list[int]] = {}
    for cid, audiences in records:
        for audience in audiences:
            grouped.setdefault(audience, []).append(cid)
    return grouped


@dataclass(frozen=True)
class BackfillMember:
    """One record per customer (of a page), carrying every exported audience they are in:
    ``source_ref`` is ``run_key|audiences|customer_id``, the audiences comma-separated
    (one slug for a customer in one audience; slugs hold no ``,`` nor ``|``)."""

    source_kind: str = "backfill"

    @staticmethod
    def ref(run_key: str, audience: str | Sequence[str], customer_id: int) -> str:
        listed = audience if isinstance(audience, str) else ",".join(audience)
        return member_ref(run_key, listed, customer_id)

    @staticmethod
    def refs(
        run_key: str, customer_id: int, audiences: Sequence[str]
    ) -> list[tuple[str, tuple[str, ...]]]:
        """The customer's record ref with its audiences: one, or as few as the store's
        200 characters of a ref hold, each with its share of the audiences."""
        groups: list[tuple[str, ...]] = []
        current: list[str] = []
        for audience in audiences:
            longer = BackfillMember.ref(run_key, [*current, audience], customer_id)
            if current and len(longer) > REF_LENGTH:
                groups.append(tuple(current))
                current = []
            current.append(audience)
        groups.append(tuple(current))
        return [(BackfillMember.ref(run_key, group, customer_id), group) for group in groups]

    @staticmethod
    def parse(ref: str) -> tuple[str, str, int]:
        """``(run_key, audiences as listed, customer_id)``."""
        run_key, audience, customer = ref.rsplit("|", 2)
        return run_key, audience, int(customer)

    @staticmethod
    def audiences(ref: str) -> tuple[str, ...]:
        return tuple(BackfillMember.parse(ref)[1].split(","))

    def sendable(self, runtime: Runtime, refs: Sequence[str], owner: str) -> set[str]:
        """Records no recorded job carries whose customer is still in each of the record's
        audiences, has no change of theirs queued in any (the queue has the later word),
        and is not named by an unfinished job or a hold. Of any other record, the
        audiences the customer is still in with nothing queued go to the back of the delta
        queue instead (as ``enter`` deltas, which send the source's membership then).

        The records' customers are held first, as the range of their ids (one row; the
        page was read in customer order), so a delta leased from here on waits for their
        sends; a delta already leased or sent shows up in the checks. ``after_send`` ends
        the hold; a job recorded by then holds its customers itself.
        """
        parsed = {ref: self.parse(ref) for ref in refs}
        # By ref (one index probe each): by customer would read every record a job ever
        # carried for them.
        carried = runtime.store.jobs.carried(self.source_kind, list(refs))
        records = {
            ref: (tuple(listed.split(",")), cid)
            for ref, (_, listed, cid) in parsed.items()
            if ref not in carried
        }
        customers = [cid for _, cid in records.values()]
        if not customers:
            return set()
        # Held as long as an uncertain submission: if this process dies mid-submit, the
        # batch's fate is unknown and nothing newer of its customers may overtake it.
        holder, now = self.holder(owner), utcnow()
        until = now + timedelta(seconds=runtime.sync.uncertain_hold_seconds)
        every = [cid for _, _, cid in parsed.values()]
        runtime.store.holds.hold_range(min(every), max(every), holder, "backfill", until)
        busy = runtime.store.jobs.customers_in_flight(customers)
        busy |= runtime.store.holds.held(customers, now=now, but=holder)
        queued = {(a, c) for c, a in runtime.store.deltas.unfinished(customers, "audience")}
        among = by_audience((cid, audiences) for audiences, cid in records.values())
        members = {
            (audience, cid)
            for audience, cids in among.items()
            for cid in members_among(runtime.source, audience, cids)
        }
        members -= queued
        allowed: set[str] = set()
        deferred: list[tuple[str, tuple[str, ...]]] = []
        for ref, (audiences, cid) in records.items():
            going = tuple(a for a in audiences if (a, cid) in members)
            if len(going) == len(audiences) and cid not in busy:
                allowed.add(ref)
            elif going:
                deferred.append((ref, going))
        self.requeue_as_deltas(runtime, deferred, owner, now)
        return allowed

    @staticmethod
    def holder(owner: str) -> str:
        return f"backfill:{owner}"[:200]

    def after_send(self, runtime: Runtime, items: Sequence[JobItem], owner: str) -> None:
        if items:
            runtime.store.holds.release_range(self.holder(owner), min(i.customer_id for i in items))

    def retry_later(
        self, runtime: Runtime, failed: Sequence[tuple[JobItem, str]], by: str, now: datetime
    ) -> RetryOutcome:
        records = [(item.source_ref, self.audiences(item.source_ref)) for item, _ in failed]
        self.requeue_as_deltas(runtime, records, by, now)
        return RetryOutcome(retried=len(failed))

    @staticmethod
    def requeue_as_deltas(
        runtime: Runtime, records: Sequence[tuple[str, Sequence[str]]], by: str, now: datetime
    ) -> None:
        """For each ``(ref, audiences)``, the audiences the customer is still in go to the
        back of the delta queue as ``enter`` deltas."""
        deltas = [
            delta
            for ref, audiences in records
            for delta in rebuilt_enters(runtime.source, ref, f"{by}|{ref}", now, audiences)
        ]
        if deltas:
            runtime.store.deltas.enqueue(deltas, now=now)

    def rejected(
        self, runtime: Runtime, item: JobItem, code: str, detail: str, payload: Any, by: str
    ) -> None:
        park(runtime, self.source_kind, item, code, detail, payload)


def park(
    runtime: Runtime, source_kind: str, item: JobItem, code: str, detail: str, payload: Any
) -> None:
    """Quarantine a record that is not a queue row."""
    runtime.store.quarantine.add(
        source_kind,
        item.source_ref,
        code,
        detail,
        customer_id=item.customer_id,
        payload=payload,
    )


REBUILT = "rebuilt:"


def is_rebuilt(delta_key: str) -> bool:
    """Whether a delta was queued by the engine from the source's state (a backfill member
    sent again) rather than by a producer reporting a change: such a delta sends what
    the source says when it is sent, since a change may have come between."""
    return delta_key.startswith(REBUILT)


def rebuilt_enters(
    source: Engine,
    ref: str,
    origin: str,
    now: datetime,
    audiences: Sequence[str] | None = None,
) -> list[NewDelta]:
    """The ``enter`` deltas that re-send a backfill record: one per audience of it (of
    ``audiences`` only, when given) the customer is still in. ``origin`` (what failed or
    was replayed) makes each key, so doing it twice stores one."""
    _, listed, customer_id = BackfillMember.parse(ref)
    of_ref = listed.split(",")
    deltas = []
    for audience in of_ref if audiences is None else audiences:
        if not is_member(source, audience, customer_id):
            continue
        # A record of one audience keeps the key it always had.
        named = origin if len(of_ref) == 1 else f"{origin}|{audience}"
        key = REBUILT + hashlib.sha256(named.encode()).hexdigest()[:40]
        deltas.append(NewDelta(audience, customer_id, "enter", now, key))
    return deltas


@dataclass(frozen=True)
class Unqueued:
    """Notice and profile items of jobs recorded before attribute writes were queued."""

    source_kind: str

    def sendable(self, runtime: Runtime, refs: Sequence[str], owner: str) -> set[str]:
        return set(refs) - runtime.store.jobs.in_flight(self.source_kind, list(refs))

    def after_send(self, runtime: Runtime, items: Sequence[JobItem], owner: str) -> None:
        """Nothing was held."""

    def retry_later(
        self, runtime: Runtime, failed: Sequence[tuple[JobItem, str]], by: str, now: datetime
    ) -> RetryOutcome:
        for item, reason in failed:
            self.rejected(runtime, item, JOB_FAILED, reason, None, by)
        return RetryOutcome(parked=len(failed))

    def rejected(
        self, runtime: Runtime, item: JobItem, code: str, detail: str, payload: Any, by: str
    ) -> None:
        park(runtime, self.source_kind, item, code, detail, payload)


LIFECYCLES: dict[str, Lifecycle] = {
    "delta": Queued("delta"),
    "write": Queued("write"),
    "event": Queued("event"),
    "backfill": BackfillMember(),
    "notice": Unqueued("notice"),
    "profile": Unqueued("profile"),
}


def lifecycle(item: JobItem) -> Lifecycle:
    return LIFECYCLES[item.source_kind]
