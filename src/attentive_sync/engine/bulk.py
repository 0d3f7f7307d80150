"""Submitting bulk batches without losing good users to one bad one.

Attentive answers a malformed *envelope* with a whole-request 400. Local validation should
make that impossible, but if it ever happens the batch is split in halves until the bad
record(s) stand alone: 255 good users are never dropped for one bad one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from attentive_sync.attentive import AttentiveClient, RequestRejected
from attentive_sync.domain.users import BulkUser


@dataclass(frozen=True)
class SubmittedJob:
    job_id: str
    users: tuple[BulkUser, ...]


@dataclass
class SubmitOutcome:
    jobs: list[SubmittedJob] = field(default_factory=list)
    rejected: list[tuple[BulkUser, str]] = field(default_factory=list)
    requests: int = 0

    def merge(self, other: SubmitOutcome) -> SubmitOutcome:
        self.jobs.extend(other.jobs)
        self.rejected.extend(other.rejected)
        self.requests += other.requests
        return self


def submit_isolating(
    client: AttentiveClient,
    users: Sequence[BulkUser],
    on_job: Callable[[SubmittedJob], None] = lambda job: None,
) -> SubmitOutcome:
    """Submit one batch; on a whole-request 400, bisect until the culprits are isolated.

    ``on_job`` runs as soon as Attentive accepts a part, before the next part goes: if a
    later part fails, what was already accepted is on record. Retryable errors propagate:
    their owner is the client (seconds) or the caller (later).
    """
    outcome = SubmitOutcome(requests=1)
    try:
        job_id = client.submit_bulk_users([u.to_wire() for u in users])
    except RequestRejected as exc:
        if len(users) == 1:
            outcome.rejected.append((users[0], str(exc)))
            return outcome
        middle = len(users) // 2
        outcome.merge(submit_isolating(client, users[:middle], on_job))
        return outcome.merge(submit_isolating(client, users[middle:], on_job))
    job = SubmittedJob(job_id, tuple(users))
    on_job(job)
    outcome.jobs.append(job)
    return outcome
