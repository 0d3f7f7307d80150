"""Bad input at the intake: a 4xx with a one-line reason and nothing stored, never a 500."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from attentive_sync.intake import LoyaltyLionAdapter, create_intake_app
from attentive_sync.intake.bodies import MAX_BODY_BYTES
from attentive_sync.store import Store
from tests.intake.conftest import SECRET, envelope, signed, stored_deltas, stored_events
from tests.intake.lion import SECRET as LION_SECRET
from tests.intake.lion import signed as lion_signed


@pytest.fixture
def client(store: Store) -> Iterator[TestClient]:
    app = create_intake_app(store, SECRET, platforms=[LoyaltyLionAdapter(LION_SECRET)])
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def _one_line(response) -> str:
    message = response.json()["error"]
    assert "\n" not in message and "Traceback" not in message
    return message


def _raw_envelope(customer_id: str) -> bytes:
    text = json.dumps(envelope(customer_id=0))
    return text.replace('"customer_id": 0', f'"customer_id": {customer_id}').encode()


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (_raw_envelope(str(2**63)), "customer_id"),
        (_raw_envelope(str(2**64)), "number out of range"),
        (_raw_envelope("1e400"), "number out of range"),
        (_raw_envelope("NaN"), "not valid JSON"),
        (_raw_envelope("true"), "customer_id"),
        (_raw_envelope('"12"'), "customer_id"),
        (_raw_envelope("12.0"), "customer_id"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"a":' * 100_000 + b"1" + b"}" * 100_000, "nested too deeply"),
        (b"\xff\xfe{}", "not valid JSON"),
    ],
)
def test_an_event_the_intake_cannot_take_is_400_with_a_reason(
    client: TestClient, store: Store, body: bytes, says: str
) -> None:
    response = client.post("/events", **signed(body))
    assert response.status_code == 400, response.text
    assert says in _one_line(response)
    assert stored_events(store) == 0


@pytest.mark.parametrize("customer_id", ["true", '"12"', str(2**63), "-1"])
def test_a_delta_with_a_customer_id_that_is_not_a_positive_64_bit_integer_is_400(
    client: TestClient, store: Store, customer_id: str
) -> None:
    fields = '"audience": "vip", "action": "enter", "occurred_at": "2025-05-31T09:30:00Z"'
    body = f'{{{fields}, "customer_id": {customer_id}}}'.encode()
    response = client.post("/deltas", **signed(body))
    assert response.status_code == 400
    assert "customer_id" in _one_line(response)
    assert stored_deltas(store) == 0


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
@pytest.mark.parametrize("path", ["/events", "/deltas"])
def test_a_body_that_is_not_declared_json_is_415(
    client: TestClient, store: Store, path: str, content_type: str | None
) -> None:
    request = signed(envelope())
    del request["headers"]["content-type"]
    if content_type:
        request["headers"]["content-type"] = content_type
    response = client.post(path, **request)
    assert response.status_code == 415
    assert "application/json" in _one_line(response)
    assert stored_events(store) == 0


def test_a_json_media_type_with_a_charset_is_accepted(client: TestClient) -> None:
    request = signed(envelope())
    request["headers"]["content-type"] = "application/json; charset=utf-8"
    assert client.post("/events", **request).status_code == 202


def _chunks(total: int, size: int = 65_536) -> Iterator[bytes]:
    yield b'{"id": "x", "padding": "'
    sent = 0
    while sent < total:
        yield b"a" * size
        sent += size
    yield b'"}'


@pytest.mark.parametrize("path", ["/events", "/deltas", "/loyaltylion"])
def test_a_chunked_body_over_the_cap_is_413_and_never_read_whole(
    client: TestClient, store: Store, path: str
) -> None:
    body = _chunks(8 * MAX_BODY_BYTES)
    headers = signed(b"{}")["headers"] | lion_signed(b"{}")["headers"]
    response = client.post(path, content=body, headers=headers)
    assert response.status_code == 413
    assert str(MAX_BODY_BYTES) in _one_line(response)
    assert stored_events(store) == 0 and stored_deltas(store) == 0


def test_a_declared_length_over_the_cap_is_413(client: TestClient) -> None:
    body = b"{" + b" " * (MAX_BODY_BYTES + 10) + b"}"
    assert client.post("/events", **signed(body)).status_code == 413


def test_a_loyaltylion_delivery_nested_too_deep_is_400(client: TestClient, store: Store) -> None:
    response = client.post("/loyaltylion", **lion_signed(b"[" * 50_000 + b"]" * 50_000))
    assert response.status_code == 400
    assert "nested too deeply" in _one_line(response)
    assert stored_events(store) == 0
