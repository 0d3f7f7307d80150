"""The client's real request bodies, captured on the wire, against the published schemas."""

import json

import pytest
import respx
from support.contract import errors

from attentive_sync.domain.attributes import build_attributes
from attentive_sync.domain.identifiers import build_identifiers
from attentive_sync.domain.users import BulkUser

BASE = "https://api.attentivemobile.com"


def full_user(n: int) -> dict:
    return BulkUser(
        customer_id=n,
        identifiers=build_identifiers(
            {
                "phone": "(415) 555-2671",
                "email": "jane@example.com",
                "clientUserId": str(n),
                "shopifyId": "s1",
                "klaviyoId": "k1",
            },
            custom={"loyalty_id": f"L-{n}"},
        ),
        attributes=build_attributes(
            {
                "firstName": "Jane",
                "lastName": "Doe",
                "dateOfBirth": "1990-05-17",
                "age": 33,
                "city": "Brooklyn",
                "zip": "11222",
                "localeCountry": "US",
            },
            {"vip": True, "points": 120, "tags": ["a", "b"]},
        ),
    ).to_wire()


@respx.mock
def test_bulk_body_matches_v2_schema(make_client):
    route = respx.post(f"{BASE}/v2/bulk/user/attributes").respond(202, json={"batchJobId": "j"})
    make_client().submit_bulk_users([full_user(n) for n in range(1, 257)])
    body = json.loads(route.calls.last.request.content)
    assert errors("v2", "UserAttributes", body) == []


def test_schema_check_is_not_vacuous():
    bad = {"users": [{"identifiers": {"phone": 5}, "attributes": {"firstName": 3}}]}
    assert errors("v2", "UserAttributes", bad)
    assert errors("v2", "UserAttributes", {"users": []})


@pytest.mark.parametrize("custom_ids", [False, True])
@respx.mock
def test_custom_event_body_matches_v1_schema(make_client, custom_ids):
    route = respx.post(f"{BASE}/v1/events/custom").respond(200)
    user: dict = {"phone": "+14155552671", "email": "jane@example.com"}
    if custom_ids:
        user["externalIdentifiers"] = {
            "clientUserId": "42",
            "customIdentifiers": [{"name": "shopifyId", "value": "s1"}],
        }
    event = {
        "type": "Loyalty Tier Upgraded",
        "user": user,
        "properties": {"new_tier": "Gold"},
        "externalEventId": "evt-1",
        "occurredAt": "2026-11-23T10:00:00Z",
    }
    make_client().send_custom_event(event)
    body = json.loads(route.calls.last.request.content)
    assert body == event
    assert errors("v1", "CustomEventsRequest", body) == []
