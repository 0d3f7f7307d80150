"""The HTTP intake: signed, validated, durable, idempotent."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace

import pytest
from pydantic import SecretStr
from sqlalchemy import select, text
from starlette.testclient import TestClient

from attentive_sync.intake import SIGNATURE_HEADER, create_intake_app, sign, signing
from attentive_sync.intake.payloads import MAX_DELTAS_PER_REQUEST
from attentive_sync.store import Store
from attentive_sync.store.tables import audience_deltas, loyalty_events
from tests.intake.conftest import envelope, signed, stored_deltas, stored_events


def delta(customer_id: int = 7, action: str = "enter", **changes) -> dict:
    return {
        "audience": "vip",
        "customer_id": customer_id,
        "action": action,
        "occurred_at": "2025-05-31T09:30:00+02:00",
        **changes,
    }


def test_a_signed_event_is_stored_with_its_true_time_and_acknowledged(
    client: TestClient, store: Store
) -> None:
    response = client.post("/events", **signed(envelope()))
    assert response.status_code == 202
    assert response.json() == {"id": "evt_1", "duplicate": False}
    reopened = Store.from_url(store.engine.url)
    with reopened.engine.connect() as conn:
        row = conn.execute(select(loyalty_events)).mappings().one()
    reopened.close()
    assert (row["event_id"], row["topic"], row["customer_id"]) == ("evt_1", "tier_upgraded", 42)
    assert row["occurred_at"].isoformat() == "2025-05-31T12:00:00+00:00"
    assert row["payload"] == {"previous_tier": "Silver", "new_tier": "Gold"}


def test_an_unsigned_request_is_401_and_stores_nothing(client: TestClient, store: Store) -> None:
    response = client.post("/events", content=json.dumps(envelope()).encode())
    assert response.status_code == 401
    assert response.json()["error"].startswith("missing webhook-")
    assert SIGNATURE_HEADER == "webhook-signature"
    assert stored_events(store) == 0


def _headers_with(**changes: str) -> dict[str, str]:
    body = json.dumps(envelope()).encode()
    now = int(time.time())
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(now),
        "webhook-signature": sign("intake-test-secret", "msg_1", now, body),
        "content-type": "application/json",
    }
    return headers | changes


@pytest.mark.parametrize(
    "changes",
    [
        {"webhook-signature": sign("another-secret", "msg_1", int(time.time()), b"{}")},
        {"webhook-signature": "v2,abc"},
        {"webhook-signature": "garbage"},
        {"webhook-id": "msg_2"},  # the id is signed too
        {"webhook-timestamp": str(int(time.time()) - 5)},  # so is the timestamp
    ],
)
def test_a_wrong_signature_is_401_and_stores_nothing(
    client: TestClient, store: Store, changes: dict[str, str]
) -> None:
    body = json.dumps(envelope()).encode()
    response = client.post("/events", content=body, headers=_headers_with(**changes))
    assert response.status_code == 401
    assert stored_events(store) == 0


def test_a_second_signature_for_key_rotation_is_accepted(client: TestClient) -> None:
    headers = _headers_with()
    headers["webhook-signature"] = "v1,b2xkLWtleQ== " + headers["webhook-signature"]
    body = json.dumps(envelope()).encode()
    assert client.post("/events", content=body, headers=headers).status_code == 202


_SERVER_NOW = 1_780_000_000


@pytest.fixture
def frozen_server_clock(monkeypatch: pytest.MonkeyPatch) -> int:
    """The server reads its clock at a fixed second, so a test at the window's edge does not
    depend on how long the request takes on a slow machine."""
    monkeypatch.setattr(signing, "time", SimpleNamespace(time=lambda: float(_SERVER_NOW)))
    return _SERVER_NOW


@pytest.mark.parametrize("age", [-301, 301, 3600])
def test_a_request_signed_outside_the_window_is_401_so_it_cannot_be_replayed(
    client: TestClient, store: Store, age: int, frozen_server_clock: int
) -> None:
    response = client.post("/events", **signed(envelope(), timestamp=frozen_server_clock - age))
    assert response.status_code == 401
    assert "webhook-timestamp" in response.json()["error"]
    assert stored_events(store) == 0


@pytest.mark.parametrize("age", [-300, 300])
def test_a_request_signed_at_the_windows_edge_is_accepted(
    client: TestClient, store: Store, age: int, frozen_server_clock: int
) -> None:
    response = client.post("/events", **signed(envelope(), timestamp=frozen_server_clock - age))
    assert response.status_code == 202
    assert stored_events(store) == 1


def test_a_body_changed_after_signing_is_401(client: TestClient, store: Store) -> None:
    request = signed(envelope())
    request["content"] = request["content"].replace(b'"customer_id": 42', b'"customer_id": 43')
    assert client.post("/events", **request).status_code == 401
    assert stored_events(store) == 0


def test_a_redelivered_event_is_acknowledged_as_duplicate_and_stored_once(
    client: TestClient, store: Store
) -> None:
    assert client.post("/events", **signed(envelope())).status_code == 202
    again = client.post("/events", **signed(envelope()))
    assert again.status_code == 200
    assert again.json() == {"id": "evt_1", "duplicate": True}
    assert stored_events(store) == 1


def test_a_reused_id_with_a_different_body_is_409_naming_the_id(
    client: TestClient, store: Store
) -> None:
    assert client.post("/events", **signed(envelope())).status_code == 202
    again = client.post("/events", **signed(envelope(payload={"new_tier": "Platinum"})))
    assert again.status_code == 409
    assert "'evt_1'" in again.json()["error"]
    with store.engine.connect() as conn:
        row = conn.execute(select(loyalty_events)).mappings().one()
    assert row["payload"] == {"previous_tier": "Silver", "new_tier": "Gold"}


def test_an_unknown_topic_is_400_naming_it(client: TestClient, store: Store) -> None:
    response = client.post("/events", **signed(envelope(topic="points_doubled")))
    assert response.status_code == 400
    assert "points_doubled" in response.json()["error"]
    assert stored_events(store) == 0


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (envelope(customer_id=0), "customer_id"),
        (envelope(created_at="2025-05-31T12:00:00"), "created_at"),
        ({"topic": "tier_upgraded"}, "id: Field required"),
    ],
)
def test_a_malformed_event_is_400_saying_what_is_wrong(
    client: TestClient, store: Store, body, says: str
) -> None:
    response = client.post("/events", **signed(body))
    assert response.status_code == 400
    assert says in response.json()["error"]
    assert stored_events(store) == 0


def test_one_delta_is_stored_with_its_key(client: TestClient, store: Store) -> None:
    response = client.post("/deltas", **signed(delta(key="crm-991")))
    assert (response.status_code, response.json()) == (202, {"stored": 1, "duplicates": 0})
    with store.engine.connect() as conn:
        row = conn.execute(select(audience_deltas)).mappings().one()
    assert (row["delta_key"], row["audience"], row["action"]) == ("crm-991", "vip", "enter")
    assert row["occurred_at"].isoformat() == "2025-05-31T07:30:00+00:00"


def test_a_batch_of_deltas_stores_each_change_once(client: TestClient, store: Store) -> None:
    batch = {"deltas": [delta(1), delta(2), delta(1), delta(1, "exit")]}
    response = client.post("/deltas", **signed(batch))
    assert (response.status_code, response.json()) == (202, {"stored": 3, "duplicates": 1})
    replay = client.post("/deltas", **signed(batch))
    assert (replay.status_code, replay.json()) == (200, {"stored": 0, "duplicates": 4})
    assert stored_deltas(store) == 3


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (delta(action="join"), "action"),
        (delta(customerId=7), "customerId"),
        ({"deltas": []}, "deltas"),
        ({"deltas": [delta()] * (MAX_DELTAS_PER_REQUEST + 1)}, "deltas"),
        ({"deltas": [delta(), delta(occurred_at="yesterday")]}, "deltas.1.occurred_at"),
    ],
)
def test_a_malformed_delta_is_400_and_nothing_of_its_batch_is_stored(
    client: TestClient, store: Store, body, says: str
) -> None:
    response = client.post("/deltas", **signed(body))
    assert response.status_code == 400
    assert says in response.json()["error"]
    assert stored_deltas(store) == 0


def test_an_oversized_body_is_refused_before_it_is_read(client: TestClient) -> None:
    body = b"{" + b" " * 1_100_000 + b"}"
    assert client.post("/deltas", **signed(body)).status_code == 413


def test_no_2xx_when_the_store_cannot_commit(store: Store) -> None:
    with store.engine.begin() as conn:
        conn.execute(text("DROP TABLE loyalty_events"))
    app = create_intake_app(store, SecretStr("intake-test-secret"))
    with TestClient(app, raise_server_exceptions=False) as failing:
        assert failing.post("/events", **signed(envelope())).status_code == 500


def test_health_needs_no_signature(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok", "acknowledged": {}}


def test_an_empty_secret_is_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="secret"):
        create_intake_app(store, SecretStr(""))
