"""An intake app over a fresh SQLite store, and a signed-request helper."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import func, select
from starlette.testclient import TestClient

from attentive_sync.intake import create_intake_app, signed_headers
from attentive_sync.store import Store
from attentive_sync.store.tables import audience_deltas, loyalty_events

SECRET = SecretStr("intake-test-secret")


@pytest.fixture
def store(tmp_path) -> Iterator[Store]:
    with Store.from_url(f"sqlite:///{tmp_path / 'state.db'}") as opened:
        opened.init()
        yield opened


@pytest.fixture
def client(store: Store) -> Iterator[TestClient]:
    with TestClient(create_intake_app(store, SECRET)) as test_client:
        yield test_client


def signed(body: Any, secret: SecretStr = SECRET, **sign: Any) -> dict[str, Any]:
    """Keyword arguments for ``client.post``: the raw body and its Standard Webhooks headers
    (``sign`` passes ``msg_id`` / ``timestamp`` through)."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return {"content": raw, "headers": signed_headers(secret, raw, **sign)}


def stored_events(store: Store) -> int:
    with store.engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(loyalty_events)) or 0)


def stored_deltas(store: Store) -> int:
    with store.engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(audience_deltas)) or 0)


def envelope(event_id: str = "evt_1", topic: str = "tier_upgraded", **changes: Any) -> dict:
    return {
        "id": event_id,
        "topic": topic,
        "created_at": "2025-05-31T12:00:00Z",
        "customer_id": 42,
        "payload": {"previous_tier": "Silver", "new_tier": "Gold"},
        **changes,
    }
