"""What every engine function is handed: the state store, the loyalty source, the client.

One ``Runtime`` per process and configuration, so the threads of a run share one connection
pool, one HTTP pool and one rate limiter. On a PostgreSQL store the rate limiter lives in
the database, shared by every worker of the API key; on SQLite it is the process's own.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass

from sqlalchemy import Engine

from attentive_sync.attentive import AttentiveClient
from attentive_sync.settings import AttentiveSettings, SyncSettings
from attentive_sync.store.db import make_engine
from attentive_sync.store.facade import Store
from attentive_sync.store.ratelimit import postgres_buckets


@dataclass
class Runtime:
    store: Store
    source: Engine
    client: AttentiveClient
    sync: SyncSettings

    def close(self) -> None:
        self.client.close()
        self.store.close()
        self.source.dispose()


def build_runtime(
    sync: SyncSettings | None = None, attentive: AttentiveSettings | None = None
) -> Runtime:
    """Open a runtime; the state store must already be initialised (``attentive-sync db init``)."""
    sync = sync or SyncSettings()
    store = Store.from_url(sync.db_url)
    store.check_schema()
    source = make_engine(sync.loyalty_url, read_only=True)
    attentive = attentive or AttentiveSettings()
    shared = store.engine.dialect.name == "postgresql"
    buckets = postgres_buckets(store.engine, attentive) if shared else None
    client = AttentiveClient(attentive, buckets=buckets)
    return Runtime(store=store, source=source, client=client, sync=sync)


_cache: dict[tuple[str, ...], Runtime] = {}
_lock = threading.Lock()


def shared_runtime() -> Runtime:
    """The process-wide runtime for the current environment (used by the Prefect tasks)."""
    sync, attentive = SyncSettings(), AttentiveSettings()
    secret = attentive.api_key.get_secret_value() if attentive.api_key else ""
    key_fingerprint = hashlib.sha256(secret.encode()).hexdigest()[:16]
    key = (sync.db_url, sync.loyalty_url, attentive.base_url, key_fingerprint)
    with _lock:
        if key not in _cache:
            _cache[key] = build_runtime(sync, attentive)
        return _cache[key]
