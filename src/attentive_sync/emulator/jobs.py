"""Asynchronous bulk jobs: PENDING, then IN_PROGRESS, then COMPLETED (or FAILED).

A job is due ``delay`` seconds after submission; it reads PENDING for the first half of that
time and IN_PROGRESS for the second. Due jobs are finished lazily, in due-time order (ties in
submission order), whenever the emulator state is touched: no background thread, so tests
that move a :class:`~attentive_sync.emulator.clock.ManualClock` see exact, repeatable results.
A slow job is due later than jobs submitted after it, so it finishes out of order.

Results are kept as zlib-compressed JSON Lines (one line per submitted user, request order),
a tenth of the size of the parsed requests, so thousands of finished jobs stay cheap.
"""

from __future__ import annotations

import heapq
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

PENDING = "PENDING"
IN_PROGRESS = "IN_PROGRESS"
COMPLETED = "COMPLETED"
FAILED = "FAILED"
ACCEPTED_MESSAGE = "OK"
_ACCEPTED = orjson.dumps({"status": 200, "message": ACCEPTED_MESSAGE})


@dataclass(eq=False, slots=True)
class Job:
    """One bulk submission and, once finished, its per-record outcome."""

    id: str
    seq: int
    submitted_at: float
    due_at: float
    will_fail: bool
    slow: bool
    users: list[Any] | None
    problems: list[str | None] | None
    total: int = 0
    accepted: int = 0
    rejected: int = 0
    finished_at: float | None = None
    results: bytes | None = field(default=None, repr=False)

    def status(self, now: float) -> str:
        if self.finished_at is not None:
            return FAILED if self.will_fail else COMPLETED
        halfway = self.submitted_at + (self.due_at - self.submitted_at) / 2
        return PENDING if now < halfway else IN_PROGRESS

    def finish(self, apply: Callable[[Any], str | None]) -> None:
        """Apply every good user in request order and keep the results file.

        The job counts as finished at its due time, however late the state noticed it.
        """
        users, problems = self.users or [], self.problems or []
        self.users = self.problems = None
        self.finished_at = self.due_at
        if self.will_fail:
            return
        lines = []
        dumps = orjson.dumps
        for index, (user, problem) in enumerate(zip(users, problems, strict=True)):
            message = problem if problem is not None else apply(user)
            if message is None:
                self.accepted += 1
                response = _ACCEPTED
            else:
                self.rejected += 1
                response = dumps({"status": 400, "message": message})
            lines.append(
                b'{"index":%d,"request":%b,"response":%b}' % (index, dumps(user), response)
            )
        lines.append(b"")
        self.results = zlib.compress(b"\n".join(lines), 1)

    def results_text(self) -> bytes | None:
        """The JSON Lines results, or ``None`` when the job has not completed."""
        return None if self.results is None else zlib.decompress(self.results)

    def summary(self, now: float) -> dict[str, Any]:
        """What the inspection API shows about the job."""
        return {
            "bulkJobId": self.id,
            "status": self.status(now),
            "totalRecords": self.total,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "slow": self.slow,
            "submittedAt": self.submitted_at,
            "dueAt": self.due_at,
            "finishedAt": self.finished_at,
        }


class JobBoard:
    """Every job by id, plus a heap of unfinished ones by due time."""

    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        self._due: list[tuple[float, int, Job]] = []

    def __len__(self) -> int:
        return len(self._jobs)

    def add(self, job: Job) -> None:
        self._jobs[job.id] = job
        heapq.heappush(self._due, (job.due_at, job.seq, job))

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def all(self) -> list[Job]:
        return list(self._jobs.values())

    def pop_due(self, now: float) -> Iterator[Job]:
        """Unfinished jobs due by ``now``, in the order they finish."""
        while self._due and self._due[0][0] <= now:
            yield heapq.heappop(self._due)[2]
