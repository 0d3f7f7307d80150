"""Custom events, custom attributes, single-user attributes and unknown routes."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import user

EVENT = {
    "type": "Tier Upgraded",
    "user": {"phone": "+15550000001"},
    "properties": {"tier": "gold"},
    "externalEventId": "evt-1",
    "occurredAt": "2024-05-01T10:00:00Z",
}


def test_custom_event_is_200_with_no_body_and_stored_once(emu: Any) -> None:
    for _ in range(3):
        response = emu.post("/v1/events/custom", json=EVENT)
        assert response.status_code == 200
        assert response.content == b""
    emu.post("/v1/events/custom", json={**EVENT, "externalEventId": "evt-2"})
    listing = emu.get("/_emulator/events").json()
    assert listing["total"] == 2
    assert listing["duplicates"] == 2
    first = listing["events"][0]
    assert first["deliveries"] == 3
    assert first["properties"] == {"tier": "gold"}


def test_events_without_an_external_id_are_never_duplicates(emu: Any) -> None:
    bare = {key: value for key, value in EVENT.items() if key != "externalEventId"}
    emu.post("/v1/events/custom", json=bare)
    emu.post("/v1/events/custom", json=bare)
    assert emu.get("/_emulator/events").json()["total"] == 2


def test_bad_custom_event_is_400_with_the_error_envelope(emu: Any) -> None:
    response = emu.post("/v1/events/custom", json={**EVENT, "type": "Tier|Upgraded"})
    assert response.status_code == 400
    assert "must not contain" in response.json()["error"]["message"]
    assert emu.get("/_emulator/events").json()["total"] == 0


def test_custom_attributes_round_trip(emu: Any) -> None:
    body = {"properties": {"vip": True, "points": 12, "tier": "gold"}, "user": EVENT["user"]}
    assert emu.post("/v1/attributes/custom", json=body).status_code == 200
    read = emu.get("/v1/attributes/custom", params={"phone": "+15550000001"})
    assert read.status_code == 200
    assert read.json() == [
        {"name": "vip", "value": "true"},
        {"name": "points", "value": "12"},
        {"name": "tier", "value": "gold"},
    ]


def test_custom_attributes_keep_their_first_type(emu: Any) -> None:
    person = {"email": "ada@example.com"}
    emu.post("/v1/attributes/custom", json={"properties": {"points": 1}, "user": person})
    clash = emu.post(
        "/v1/attributes/custom", json={"properties": {"points": "many", "new": 1}, "user": person}
    )
    assert clash.status_code == 400
    assert "typed number" in clash.json()["error"]["message"]
    values = emu.get("/v1/attributes/custom", params={"email": "ada@example.com"}).json()
    assert values == [{"name": "points", "value": "1"}]


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({}, 400),
        ({"phone": "+15550000001", "email": "ada@example.com"}, 400),
        ({"phone": "5551234"}, 400),
        ({"email": "nobody@example.com"}, 404),
    ],
)
def test_custom_attributes_read_takes_exactly_one_known_identifier(
    emu: Any, params: dict[str, str], status: int
) -> None:
    assert emu.get("/v1/attributes/custom", params=params).status_code == status


def test_single_user_attributes_apply_at_once(emu: Any) -> None:
    response = emu.post("/v2/user/attributes", json=user(4))
    assert response.status_code == 202
    assert emu.state.find_user(clientUserId="customer-4") is not None
    bad = emu.post("/v2/user/attributes", json=user(5, identifiers={"phone": "5551234"}))
    assert bad.status_code == 400


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/v2/segments"), ("GET", "/v2/bulk/user/attributes"), ("DELETE", "/v1/me")],
)
def test_anything_else_is_404_in_the_error_envelope(emu: Any, method: str, path: str) -> None:
    response = emu.request(method, path)
    assert response.status_code == 404
    assert response.json()["error"]["message"] == f"no endpoint for {method} {path}"
    assert "x-ratelimit-limit" in response.headers
