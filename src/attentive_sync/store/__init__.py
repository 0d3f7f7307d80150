"""The engine's durable state over one SQL URL: SQLite by default, PostgreSQL to scale out.

Start from ``Store.from_url(url)``; ``init_db(url)`` creates or upgrades the schema.
"""

from attentive_sync.store.accepted import AcceptedAttribute
from attentive_sync.store.checkpoints import Checkpoint
from attentive_sync.store.db import init_db, make_engine, normalise_url
from attentive_sync.store.errors import (
    InvalidRecordError,
    JobAlreadyRecordedError,
    SchemaNotReadyError,
    StoreError,
    UnknownJobError,
    UnsupportedDatabaseError,
)
from attentive_sync.store.facade import Store
from attentive_sync.store.jobs import JobItem, RecordedJob
from attentive_sync.store.quarantine import QuarantineEntry, ReplayOutcome
from attentive_sync.store.queue import EnqueueResult, Queue
from attentive_sync.store.records import (
    NewDelta,
    NewEvent,
    QueuedDelta,
    QueuedEvent,
    delta_key_for,
)

__all__ = [
    "AcceptedAttribute",
    "RecordedJob",
    "Checkpoint",
    "EnqueueResult",
    "InvalidRecordError",
    "JobAlreadyRecordedError",
    "JobItem",
    "NewDelta",
    "NewEvent",
    "QuarantineEntry",
    "Queue",
    "QueuedDelta",
    "QueuedEvent",
    "ReplayOutcome",
    "SchemaNotReadyError",
    "Store",
    "StoreError",
    "UnknownJobError",
    "UnsupportedDatabaseError",
    "delta_key_for",
    "init_db",
    "make_engine",
    "normalise_url",
]
