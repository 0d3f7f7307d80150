"""Bearer keys and scopes: 401 for a missing or unknown key, 403 naming a missing scope."""

from __future__ import annotations

from typing import Any

import pytest

from attentive_sync.emulator import ALL_SCOPES
from attentive_sync.emulator.contract import load_bundle

from .conftest import user

EVENT = {"type": "Tier Upgraded", "user": {"phone": "+15550000001"}}
KEYS = {
    "all": ALL_SCOPES,
    "attrs-only": frozenset({"attributes:write"}),
    "events-only": frozenset({"events:write"}),
    "nothing": frozenset(),
}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def keyed(make_emulator: Any) -> Any:
    return make_emulator(keys=KEYS, job_delay=0)


def test_no_key_is_401_with_the_error_envelope(keyed: Any) -> None:
    response = keyed.get("/v1/me", headers={})
    assert response.status_code == 401
    assert "Authorization" in response.json()["error"]["message"]
    assert response.headers["x-ratelimit-limit"] == "150"


@pytest.mark.parametrize("header", ["Bearer nope", "Basic all", "Bearer ", "all"])
def test_unknown_key_or_wrong_scheme_is_401(keyed: Any, header: str) -> None:
    assert keyed.get("/v2/me", headers={"Authorization": header}).status_code == 401


def test_me_names_the_company_for_any_valid_key(keyed: Any) -> None:
    body = keyed.get("/v1/me", headers=bearer("nothing")).json()
    assert set(body) == {
        "applicationName",
        "attentiveDomainName",
        "companyName",
        "contactEmail",
        "companyId",
    }
    assert keyed.get("/v2/me", headers=bearer("nothing")).json() == body


def test_bulk_without_subscriptions_write_is_403_naming_the_scope(keyed: Any) -> None:
    response = keyed.post(
        "/v2/bulk/user/attributes", json={"users": [user()]}, headers=bearer("attrs-only")
    )
    assert response.status_code == 403
    assert "subscriptions:write" in response.json()["error"]["message"]
    assert "x-ratelimit-remaining" in response.headers


@pytest.mark.parametrize(
    ("method", "path", "body", "allowed", "refused"),
    [
        ("POST", "/v1/events/custom", EVENT, "events-only", "attrs-only"),
        (
            "POST",
            "/v1/attributes/custom",
            {"properties": {"vip": True}, "user": {"phone": "+15550000001"}},
            "attrs-only",
            "events-only",
        ),
        ("POST", "/v2/user/attributes", user(), "all", "attrs-only"),
    ],
)
def test_each_endpoint_demands_its_scopes(
    keyed: Any, method: str, path: str, body: Any, allowed: str, refused: str
) -> None:
    assert keyed.request(method, path, json=body, headers=bearer(refused)).status_code == 403
    assert keyed.request(method, path, json=body, headers=bearer(allowed)).status_code < 300


def test_job_status_needs_a_valid_key_only(keyed: Any) -> None:
    job_id = keyed.submit([user()], headers=bearer("all"))
    assert keyed.get(f"/v2/bulk/job/{job_id}", headers=bearer("nothing")).status_code == 200
    assert keyed.get(f"/v2/bulk/job/{job_id}", headers={}).status_code == 401


def test_known_scopes_match_the_contract() -> None:
    flows = load_bundle("v2")["components"]["securitySchemes"]["OAuthFlow"]["flows"]
    assert frozenset(flows["authorizationCode"]["scopes"]) == ALL_SCOPES
