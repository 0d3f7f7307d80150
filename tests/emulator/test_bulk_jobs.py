"""Bulk submit, the job lifecycle and the per-record results file."""

from __future__ import annotations

import json
from typing import Any

from .conftest import Emulator, user


def results(emu: Emulator, job_id: str) -> list[dict[str, Any]]:
    status = emu.get(f"/v2/bulk/job/{job_id}").json()
    assert status["status"] == "COMPLETED"
    response = emu.get(status["url"])
    assert response.status_code == 200
    return [json.loads(line) for line in response.text.splitlines()]


def test_256_valid_users_are_accepted_as_one_job(emu: Emulator) -> None:
    response = emu.post("/v2/bulk/user/attributes", json={"users": [user(n) for n in range(256)]})
    assert response.status_code == 202
    body = response.json()
    assert body["batchJobId"] and body["message"]
    assert emu.get(f"/v2/bulk/job/{body['batchJobId']}").json()["totalRecords"] == 256


def test_257_users_fail_the_whole_request_with_the_error_envelope(emu: Emulator) -> None:
    response = emu.post("/v2/bulk/user/attributes", json={"users": [user(n) for n in range(257)]})
    assert response.status_code == 400
    error = response.json()["error"]
    assert isinstance(error["id"], int)
    assert "at most 256" in error["message"]
    assert emu.state.list_jobs() == []


def test_bad_envelopes_are_whole_request_400s(emu: Emulator) -> None:
    bodies: list[Any] = [{"users": []}, {}, {"users": "x"}, [], {"users": [user()], "extra": 1}]
    for body in bodies:
        assert emu.post("/v2/bulk/user/attributes", json=body).status_code == 400, body
    not_json = emu.post("/v2/bulk/user/attributes", content=b"{nope")
    assert not_json.status_code == 400
    assert "not valid JSON" in not_json.json()["error"]["message"]


def test_job_moves_pending_in_progress_completed(emu: Emulator) -> None:
    job_id = emu.submit([user()])
    statuses = []
    for _ in range(3):
        body = emu.get(f"/v2/bulk/job/{job_id}").json()
        statuses.append(body["status"])
        assert ("url" in body) == (body["status"] == "COMPLETED")
        emu.clock.advance(0.5)
    assert statuses == ["PENDING", "IN_PROGRESS", "COMPLETED"]


def test_results_have_one_line_per_user_in_request_order(emu: Emulator) -> None:
    users = [user(n) for n in range(5)]
    users[2] = user(2, identifiers={"phone": "5551234"})
    job_id = emu.submit(users)
    emu.clock.advance(1.0)
    lines = results(emu, job_id)
    assert [line["index"] for line in lines] == [0, 1, 2, 3, 4]
    assert [line["request"] for line in lines] == users
    assert [line["response"]["status"] for line in lines] == [200, 200, 400, 200, 200]
    assert "E.164" in lines[2]["response"]["message"]
    assert "5551234" not in lines[2]["response"]["message"]
    assert emu.state.find_user(phone="+15550000001") is not None
    assert emu.state.find_user(clientUserId="customer-2") is None


def test_results_url_is_absolute_and_only_for_completed_jobs(emu: Emulator) -> None:
    job_id = emu.submit([user()])
    early = emu.get(f"/v2/bulk/job/{job_id}/results.jsonl")
    assert early.status_code == 404
    assert "PENDING" in early.json()["error"]["message"]
    emu.clock.advance(1.0)
    url = emu.get(f"/v2/bulk/job/{job_id}").json()["url"]
    assert url == f"http://emulator.test/v2/bulk/job/{job_id}/results.jsonl"


def test_unknown_job_is_404(emu: Emulator) -> None:
    for path in ("/v2/bulk/job/nope", "/v2/bulk/job/nope/results.jsonl"):
        response = emu.get(path)
        assert response.status_code == 404
        assert response.json()["error"]["message"] == "no bulk job has this id"


def test_attributes_are_applied_at_completion_not_at_submit(emu: Emulator) -> None:
    emu.submit([user(7)])
    assert emu.state.find_user(phone="+15550000007") is None
    emu.clock.advance(1.0)
    stored = emu.state.find_user(phone="+15550000007")
    assert stored is not None
    assert stored["attributes"] == {"firstName": "Ada", "custom": {"vip": True}}


def test_jobs_apply_in_completion_order(make_emulator: Any) -> None:
    emu = make_emulator(job_delay=1.0, faults={"slow_job_rate": 1.0, "slow_job_delay": 5.0})
    slow = emu.submit([user(1, attributes={"custom": {"tier": "gold"}})])
    emu.state.change_faults({"slow_job_rate": 0.0})
    fast = emu.submit([user(1, attributes={"custom": {"tier": "silver"}})])
    emu.clock.advance(1.0)
    assert emu.get(f"/v2/bulk/job/{fast}").json()["status"] == "COMPLETED"
    assert emu.get(f"/v2/bulk/job/{slow}").json()["status"] == "PENDING"
    assert emu.state.find_user(phone="+15550000001")["attributes"]["custom"]["tier"] == "silver"
    emu.clock.advance(4.0)
    assert emu.state.find_user(phone="+15550000001")["attributes"]["custom"]["tier"] == "gold"


def test_zero_delay_completes_at_once(make_emulator: Any) -> None:
    emu = make_emulator(job_delay=0)
    job_id = emu.submit([user()])
    assert emu.get(f"/v2/bulk/job/{job_id}").json()["status"] == "COMPLETED"


def test_attribute_type_is_fixed_by_first_value(make_emulator: Any) -> None:
    emu = make_emulator(job_delay=0)
    first = emu.submit([user(1, attributes={"custom": {"points": 10}})])
    second = emu.submit(
        [
            user(2, attributes={"custom": {"points": "ten"}}),
            user(3, attributes={"custom": {"points": 12.5}}),
        ]
    )
    assert [line["response"]["status"] for line in results(emu, first)] == [200]
    lines = results(emu, second)
    assert [line["response"]["status"] for line in lines] == [400, 200]
    assert "typed number" in lines[0]["response"]["message"]
    assert emu.state.find_user(phone="+15550000002") is None
    assert emu.state.stats()["attribute_types"] == {"points": "number"}


def test_users_merge_by_any_identifier(make_emulator: Any) -> None:
    emu = make_emulator(job_delay=0)
    emu.submit([{"identifiers": {"email": "ada@example.com"}, "attributes": {"firstName": "Ada"}}])
    emu.submit(
        [
            {
                "identifiers": {"email": "ada@example.com", "phone": "+15550001111"},
                "attributes": {"location": {"city": "Leeds"}, "custom": {"vip": True}},
            },
            {
                "identifiers": {
                    "phone": "+15550001111",
                    "customIdentifiers": [{"key": "loyaltyId", "value": "L-1"}],
                },
                "attributes": {"lastName": "Lovelace", "location": {"zip": "LS1"}},
            },
        ]
    )
    page = emu.get("/_emulator/users").json()
    assert page["total"] == 1
    (only,) = page["users"]
    assert only["identifiers"] == {
        "email": "ada@example.com",
        "phone": "+15550001111",
        "custom": {"loyaltyId": "L-1"},
    }
    assert only["attributes"] == {
        "firstName": "Ada",
        "lastName": "Lovelace",
        "location": {"city": "Leeds", "zip": "LS1"},
        "custom": {"vip": True},
    }
