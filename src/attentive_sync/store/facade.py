"""``Store``: the one object the engine holds to reach all of its durable state."""

from __future__ import annotations

from types import TracebackType
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.engine import URL

from attentive_sync.store.accepted import AcceptedAttributes
from attentive_sync.store.checkpoints import Checkpoints
from attentive_sync.store.db import current_revision, head_revision, make_engine, upgrade
from attentive_sync.store.errors import SchemaNotReadyError
from attentive_sync.store.holds import CustomerHolds
from attentive_sync.store.jobs import JobRepository
from attentive_sync.store.notices import Notices
from attentive_sync.store.quarantine import QuarantineRepository
from attentive_sync.store.queue import Queue, QueueSpec
from attentive_sync.store.records import (
    NewDelta,
    NewEvent,
    NewWrite,
    QueuedDelta,
    QueuedEvent,
    QueuedWrite,
)
from attentive_sync.store.sent_members import SentMembers
from attentive_sync.store.tables import attribute_writes, audience_deltas, loyalty_events

DELTAS: QueueSpec[NewDelta, QueuedDelta] = QueueSpec(
    table=audience_deltas,
    key_column="delta_key",
    source_kind="delta",
    row_type=QueuedDelta,
    supersede_key=("customer_id", "audience"),
    across_jobs=True,
    job_kinds=("audience_incremental",),
)
EVENTS: QueueSpec[NewEvent, QueuedEvent] = QueueSpec(
    table=loyalty_events, key_column="event_id", source_kind="event", row_type=QueuedEvent
)
WRITES: QueueSpec[NewWrite, QueuedWrite] = QueueSpec(
    table=attribute_writes,
    key_column="write_key",
    source_kind="write",
    row_type=QueuedWrite,
    supersede_key=("customer_id", "kind"),
    across_jobs=True,
    job_kinds=("loyalty_profile", "reward_reminder", "expiry_notice"),
)


class Store:
    """The queues and repositories over one engine (SQLite or PostgreSQL)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.deltas: Queue[NewDelta, QueuedDelta] = Queue(engine, DELTAS)
        self.events: Queue[NewEvent, QueuedEvent] = Queue(engine, EVENTS)
        self.writes: Queue[NewWrite, QueuedWrite] = Queue(engine, WRITES)
        queues: dict[str, Queue[Any, Any]] = {
            "delta": self.deltas,
            "event": self.events,
            "write": self.writes,
        }
        self.queues = queues
        self.jobs = JobRepository(
            engine,
            {kind: q.spec.table for kind, q in queues.items()},
            {job_kind: kind for kind, q in queues.items() for job_kind in q.spec.job_kinds},
        )
        self.quarantine = QuarantineRepository(
            engine, {kind: q.requeue_quarantined for kind, q in queues.items()}
        )
        self.accepted = AcceptedAttributes(engine)
        self.checkpoints = Checkpoints(engine)
        self.notices = Notices(engine)
        self.holds = CustomerHolds(engine)
        self.sent_members = SentMembers(engine)

    @classmethod
    def from_url(cls, url: str | URL | None = None, **engine_kwargs: Any) -> Store:
        """Open the store at ``url`` (default: ``SyncSettings().db_url``)."""
        return cls(make_engine(url, **engine_kwargs))

    def init(self) -> str | None:
        """Create the schema or upgrade it in place; returns the revision now in place."""
        upgrade(self.engine)
        return current_revision(self.engine)

    def check_schema(self) -> None:
        """Fail with a clear message unless the database is at the code's schema revision."""
        current, head = current_revision(self.engine), head_revision()
        if current is None:
            raise SchemaNotReadyError(
                "the state store is not initialised: run `attentive-sync db init`"
            )
        if current != head:
            raise SchemaNotReadyError(
                f"the state store is at revision {current}, this code needs {head}: "
                "run `attentive-sync db init` to upgrade it"
            )

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
