"""The emulator's whole in-memory state, behind one lock.

uvicorn serves every request on one event loop, but tests and the inspection API read the
state from other threads, so every public method takes the lock. Each one first finishes the
bulk jobs that are due (see :mod:`~attentive_sync.emulator.jobs`), so whoever looks sees
exactly what a job's completion has applied by then.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
import uuid
from collections.abc import Mapping
from typing import Any

from attentive_sync.emulator.clock import Clock
from attentive_sync.emulator.config import EmulatorConfig
from attentive_sync.emulator.events import EventStore
from attentive_sync.emulator.faults import FaultInjector
from attentive_sync.emulator.jobs import Job, JobBoard
from attentive_sync.emulator.journal import Journal, key_suffix
from attentive_sync.emulator.ratelimit import Decision, SlidingWindowLimiter
from attentive_sync.emulator.rates import RateCounter
from attentive_sync.emulator.users import UserStore, identifiers_from_v2


class EmulatorState:
    """Users, jobs, events, limits, faults and the request journal of one emulator."""

    def __init__(self, config: EmulatorConfig, clock: Clock = time.monotonic) -> None:
        self.config = config
        self.clock = clock
        self._lock = threading.RLock()
        self._started = clock()
        self._clear()

    def _clear(self) -> None:
        seed = self.config.seed
        self.users = UserStore()
        self.jobs = JobBoard()
        self.events = EventStore()
        self.limiter = SlidingWindowLimiter(self.clock)
        self.faults = FaultInjector(self.config.faults, random.Random(seed), self.clock)
        self.journal = Journal(self.config.request_log_size)
        self.rates = RateCounter(self.clock())
        self._job_ids = random.Random(f"job-ids/{seed}")
        self._request_ids = itertools.count(1)
        self._job_seq = itertools.count(1)

    def reset(self) -> None:
        """Forget everything, faults included: back to the state at start-up."""
        with self._lock:
            self._clear()

    def settle(self) -> None:
        """Finish every job that is due by now, in completion order."""
        with self._lock:
            for job in self.jobs.pop_due(self.clock()):
                job.finish(self._apply_bulk_user)

    def _apply_bulk_user(self, item: Mapping[str, Any]) -> str | None:
        return self.users.upsert(
            identifiers_from_v2(item["identifiers"]), item.get("attributes", {})
        )

    def elapsed(self) -> float:
        """Seconds since start-up on the emulator's clock (the request log's time axis)."""
        return self.clock() - self._started

    def next_request_id(self) -> int:
        with self._lock:
            return next(self._request_ids)

    def admit(self, key: str, endpoint: str, limit: int) -> Decision:
        """Spend one request from the key's window for this endpoint (storms say no first)."""
        with self._lock:
            if self.faults.in_storm():
                decision = Decision(False, limit, 0, 1.0)
            else:
                decision = self.limiter.acquire((key, endpoint), limit)
            self.rates.count(key_suffix(key) or "", endpoint, self.clock(), decision.allowed)
            return decision

    def standing(self, key: str, endpoint: str, limit: int) -> Decision:
        with self._lock:
            return self.limiter.peek((key, endpoint), limit)

    def draw_drop(self) -> bool:
        with self._lock:
            return self.faults.drop()

    def draw_lost_response(self) -> bool:
        """Whether a handled request's answer is lost (the caller records it as lost)."""
        with self._lock:
            return self.faults.lose_response()

    def draw_server_error(self) -> int | None:
        with self._lock:
            status = self.faults.server_error()
            self.journal.injected_errors += status is not None
            return status

    def submit_job(self, users: list[Any], problems: list[str | None]) -> str:
        """Queue a bulk job; good users are applied when it completes."""
        with self._lock:
            self.settle()
            will_fail, slow = self.faults.job_fate()
            delay = self.faults.settings.slow_job_delay if slow else self.config.job_delay
            now = self.clock()
            job = Job(
                id=str(uuid.UUID(int=self._job_ids.getrandbits(128), version=4)),
                seq=next(self._job_seq),
                submitted_at=now,
                due_at=now + delay,
                will_fail=will_fail,
                slow=slow,
                users=users,
                problems=problems,
                total=len(users),
            )
            self.jobs.add(job)
            return job.id

    def job_status(self, job_id: str) -> tuple[str, int] | None:
        """``(status, total records)`` of a job now, or ``None`` for an unknown id."""
        with self._lock:
            self.settle()
            job = self.jobs.get(job_id)
            return None if job is None else (job.status(self.clock()), job.total)

    def job_results(self, job_id: str) -> tuple[str, bytes | None] | None:
        """``(status, JSON Lines or None until completed)``, or ``None`` for an unknown id."""
        with self._lock:
            self.settle()
            job = self.jobs.get(job_id)
            return None if job is None else (job.status(self.clock()), job.results_text())

    def upsert_user(
        self, identifiers: Mapping[str, Any], attributes: Mapping[str, Any]
    ) -> str | None:
        """Apply one user at once (single-user endpoints); a type conflict returns a message."""
        with self._lock:
            self.settle()
            return self.users.upsert(identifiers, attributes)

    def custom_attributes(self, kind: str, value: str) -> dict[str, Any] | None:
        """The custom attributes of the user owning ``kind=value``, or ``None``."""
        with self._lock:
            self.settle()
            number = self.users.lookup(kind, value)
            if number is None:
                return None
            return self.users.get(number)["attributes"].get("custom", {})

    def add_event(self, body: Mapping[str, Any]) -> bool:
        with self._lock:
            return self.events.add(body, self.elapsed())

    def record(
        self,
        request_id: int,
        method: str,
        path: str,
        endpoint: str,
        status: int | None,
        key: str | None,
        lost: bool = False,
    ) -> None:
        with self._lock:
            self.journal.record(
                request_id, self.elapsed(), method, path, endpoint, status, key, lost
            )

    # Inspection: what tests and ``/_emulator/`` read and change.

    def find_user(self, **identifier: str) -> dict[str, Any] | None:
        """The user owning one identifier, e.g. ``find_user(phone="+15551234567")``."""
        ((kind, value),) = identifier.items()
        with self._lock:
            self.settle()
            number = self.users.lookup(kind, value)
            return None if number is None else self.users.get(number)

    def users_page(
        self, filters: Mapping[str, str], offset: int = 0, limit: int = 100
    ) -> tuple[int, list[dict[str, Any]]]:
        """``(matching count, one page of users)`` in creation order."""
        with self._lock:
            self.settle()
            numbers = self.users.numbers(filters)
            page = numbers[offset : offset + limit]
            return len(numbers), [self.users.get(number) for number in page]

    def list_events(self, event_type: str | None = None) -> dict[str, Any]:
        """``{"total", "duplicates", "events"}``; duplicates count every repeated delivery."""
        with self._lock:
            found = self.events.select(event_type)
            return {"total": len(found), "duplicates": self.events.duplicates, "events": found}

    def list_jobs(self) -> list[dict[str, Any]]:
        with self._lock:
            self.settle()
            now = self.clock()
            return [job.summary(now) for job in self.jobs.all()]

    def list_requests(self, limit: int | None = None) -> list[dict[str, Any]]:
        """The newest ``limit`` API requests (all kept ones when ``None``), oldest first."""
        with self._lock:
            entries = list(self.journal.entries)
        if limit is None:
            return entries
        return entries[len(entries) - limit :] if limit < len(entries) else entries

    def stats(self) -> dict[str, Any]:
        with self._lock:
            self.settle()
            now = self.clock()
            statuses: dict[str, int] = {}
            for job in self.jobs.all():
                status = job.status(now)
                statuses[status] = statuses.get(status, 0) + 1
            return {
                **self.journal.stats(),
                "users": len(self.users),
                "events": len(self.events),
                "duplicate_events": self.events.duplicates,
                "jobs": statuses,
                "attribute_types": self.users.types.snapshot(),
            }

    def rate_report(self) -> dict[str, dict[str, Any]]:
        """Arrivals per key suffix and endpoint, per second (see :mod:`.rates`)."""
        with self._lock:
            return self.rates.report()

    def faults_snapshot(self) -> dict[str, Any]:
        with self._lock:
            return self.faults.snapshot()

    def change_faults(
        self, changes: Mapping[str, Any], storm_requests: int = 0, storm_seconds: float = 0.0
    ) -> dict[str, Any]:
        """Change fault settings and optionally start a 429 storm; returns the new settings."""
        with self._lock:
            self.faults.update(changes)
            if storm_requests or storm_seconds:
                self.faults.start_storm(storm_requests, storm_seconds)
            return self.faults.snapshot()
