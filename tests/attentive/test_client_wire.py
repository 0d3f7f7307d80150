import httpx
import pytest
import respx

from attentive_sync.attentive import (
    AuthenticationError,
    PermissionDenied,
    RateLimited,
    RequestRejected,
    TransportError,
)
from attentive_sync.domain.attributes import build_attributes
from attentive_sync.domain.identifiers import build_identifiers
from attentive_sync.domain.users import BulkUser

BASE = "https://api.attentivemobile.com"


def user(n: int) -> dict:
    return BulkUser(
        customer_id=n,
        identifiers=build_identifiers({"phone": f"+1415555{n:04d}"}),
        attributes=build_attributes(custom={"vip": True}),
    ).to_wire()


@respx.mock
def test_bulk_submit_wire_shape_and_headers(make_client):
    route = respx.post(f"{BASE}/v2/bulk/user/attributes").respond(
        202, json={"message": "ok", "batchJobId": "job-1"}
    )
    assert make_client().submit_bulk_users([user(1)]) == "job-1"
    request = route.calls.last.request
    assert request.headers["authorization"] == "Bearer sk-test-123"
    assert request.headers["content-type"] == "application/json"
    assert httpx.Response(200, content=request.content).json() == {
        "users": [
            {"identifiers": {"phone": "+14155550001"}, "attributes": {"custom": {"vip": True}}}
        ]
    }


@pytest.mark.parametrize("count", [0, 257])
def test_bulk_submit_refuses_bad_sizes_locally(make_client, count):
    with pytest.raises(ValueError, match="1..256"):
        make_client().submit_bulk_users([user(1)] * count)


@respx.mock
def test_job_status_and_results(make_client):
    respx.get(f"{BASE}/v2/bulk/job/job-1").respond(
        200,
        json={
            "bulkJobId": "job-1",
            "status": "COMPLETED",
            "totalRecords": 2,
            "resultUrl": f"{BASE}/results/job-1.jsonl",
        },
    )
    lines = (
        '{"index": 0, "request": {}, "response": {"status": 200, "message": "ok"}}\n'
        '{"index": 1, "request": {}, "response": {"status": 400, "message": "bad phone"}}\n'
    )
    respx.get(f"{BASE}/results/job-1.jsonl").respond(200, text=lines)
    client = make_client()
    job = client.get_bulk_job("job-1")
    assert job.finished and job.total_records == 2
    results = list(client.iter_bulk_results(job.results_url))
    assert [(r.index, r.accepted) for r in results] == [(0, True), (1, False)]


@respx.mock
def test_unknown_status_is_not_finished(make_client):
    respx.get(f"{BASE}/v2/bulk/job/j").respond(200, json={"bulkJobId": "j", "status": "QUEUED"})
    assert not make_client().get_bulk_job("j").finished


@respx.mock
def test_retries_5xx_then_succeeds(make_client, fake_time):
    route = respx.post(f"{BASE}/v1/events/custom")
    route.side_effect = [httpx.Response(503), httpx.Response(500), httpx.Response(200)]
    client = make_client()
    client.send_custom_event({"type": "T", "user": {"phone": "+14155552671"}})
    assert route.call_count == 3 and client.retries == 2
    assert fake_time.sleeps == [pytest.approx(0.375), pytest.approx(0.75)]


@respx.mock
def test_429_honours_retry_after(make_client, fake_time):
    route = respx.get(f"{BASE}/v1/me")
    route.side_effect = [
        httpx.Response(429, headers={"Retry-After": "3"}),
        httpx.Response(200, json={"companyName": "Acme", "companyId": "c1"}),
    ]
    assert make_client().me().company_name == "Acme"
    assert fake_time.sleeps == [3.0]


@respx.mock
def test_gives_up_after_max_attempts(make_client):
    respx.post(f"{BASE}/v1/events/custom").respond(429, headers={"x-ratelimit-remaining": "0"})
    with pytest.raises(RateLimited):
        make_client(max_attempts=3).send_custom_event({"type": "T"})


@respx.mock
def test_transport_errors_are_retryable_and_chained(make_client):
    respx.get(f"{BASE}/v1/me").side_effect = httpx.ConnectError("refused")
    with pytest.raises(TransportError) as info:
        make_client(max_attempts=2).me()
    assert isinstance(info.value.__cause__, httpx.ConnectError)


@pytest.mark.parametrize(
    ("status", "error", "fragment"),
    [
        (401, AuthenticationError, "ATTENTIVE_API_KEY"),
        (403, PermissionDenied, "subscriptions:write"),
        (400, RequestRejected, "users must not be empty"),
    ],
)
@respx.mock
def test_never_retries_client_errors(make_client, status, error, fragment):
    route = respx.post(f"{BASE}/v2/bulk/user/attributes").respond(
        status, json={"error": {"id": 1, "message": "users must not be empty"}}
    )
    with pytest.raises(error, match=fragment):
        make_client().submit_bulk_users([user(1)])
    assert route.call_count == 1


@respx.mock
def test_error_body_masked(make_client):
    respx.post(f"{BASE}/v1/events/custom").respond(
        400, json={"error": {"id": 1, "message": "bad user jane@example.com"}}
    )
    with pytest.raises(RequestRejected) as info:
        make_client().send_custom_event({"type": "T"})
    assert "jane@" not in str(info.value) and "jane@" not in info.value.body


def test_missing_key_is_a_clear_error():
    from attentive_sync.attentive import AttentiveClient, AttentiveError
    from attentive_sync.settings import AttentiveSettings

    with pytest.raises(AttentiveError, match="ATTENTIVE_API_KEY"):
        AttentiveClient(AttentiveSettings(api_key=None))


@respx.mock
def test_results_on_another_host_are_fetched_without_the_key(make_client):
    url = "https://results.example-storage.com/job-1.jsonl?X-Signature=abc"
    route = respx.get(url).respond(
        200, text='{"index": 0, "request": {}, "response": {"status": 200, "message": "ok"}}\n'
    )
    assert [r.accepted for r in make_client().iter_bulk_results(url)] == [True]
    assert "authorization" not in route.calls.last.request.headers


@respx.mock
def test_results_on_the_api_host_keep_the_key(make_client):
    route = respx.get(f"{BASE}/v2/bulk/job/j/results.jsonl").respond(200, text="")
    list(make_client().iter_bulk_results(f"{BASE}/v2/bulk/job/j/results.jsonl"))
    assert route.calls.last.request.headers["authorization"] == "Bearer sk-test-123"
