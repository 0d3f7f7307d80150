"""Bulk results files: streamed line by line, tolerant of their shape, never half-read."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest
import respx
from pydantic import SecretStr
from support.transports import CutResults

from attentive_sync.attentive import (
    AttentiveClient,
    AttentiveError,
    ResultsUnreadable,
    ServerError,
    TransportError,
)
from attentive_sync.emulator import EmulatorConfig, EmulatorServer
from attentive_sync.settings import DEMO_API_KEY, AttentiveSettings

BASE = "https://api.attentivemobile.com"
URL = f"{BASE}/v2/bulk/job/job-1/results.jsonl"


def line(index: int | None, status: int = 200, message: str = "OK") -> str:
    row: dict = {"request": {"identifiers": {"clientUserId": f"c{index}"}}}
    if index is not None:
        row["index"] = index
    row["response"] = {"status": status, "message": message}
    return json.dumps(row) + "\n"


class Chunks(httpx.SyncByteStream):
    """A response body sent chunk by chunk; counts what was read, and can break off."""

    def __init__(self, chunks: list[bytes], then: Exception | None = None) -> None:
        self.chunks = chunks
        self.then = then
        self.read = 0
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.chunks:
            self.read += 1
            yield chunk
        if self.then is not None:
            raise self.then

    def close(self) -> None:
        self.closed = True


@respx.mock
def test_lines_are_read_as_they_arrive_not_the_whole_file_first(make_client):
    body = Chunks([line(i).encode() for i in range(1000)])
    respx.get(URL).mock(return_value=httpx.Response(200, stream=body))
    results = make_client().iter_bulk_results(URL)
    first = next(results)
    assert first.index == 0 and first.accepted
    assert body.read <= 2, "the whole file was read before the first record"
    assert [r.index for r in results] == list(range(1, 1000))
    assert body.closed


@respx.mock
def test_a_caller_that_stops_early_closes_the_download(make_client):
    body = Chunks([line(i).encode() for i in range(10)])
    respx.get(URL).mock(return_value=httpx.Response(200, stream=body))
    results = make_client().iter_bulk_results(URL)
    next(results)
    results.close()
    assert body.closed and body.read < 10


@respx.mock
def test_a_5xx_before_the_first_line_is_retried(make_client, fake_time):
    route = respx.get(URL)
    route.side_effect = [httpx.Response(503), httpx.Response(200, text=line(0) + line(1))]
    client = make_client()
    assert [r.index for r in client.iter_bulk_results(URL)] == [0, 1]
    assert route.call_count == 2 and client.retries == 1


@respx.mock
def test_a_connection_lost_before_the_first_line_is_retried(make_client, fake_time):
    route = respx.get(URL)
    route.side_effect = [
        httpx.Response(200, stream=Chunks([], then=httpx.ReadError("reset"))),
        httpx.Response(200, text=line(0)),
    ]
    client = make_client()
    assert [r.index for r in client.iter_bulk_results(URL)] == [0]
    assert route.call_count == 2 and client.retries == 1


@respx.mock
def test_retries_before_the_first_line_are_bounded(make_client, fake_time):
    route = respx.get(URL).respond(502)
    with pytest.raises(ServerError):
        list(make_client(max_attempts=3).iter_bulk_results(URL))
    assert route.call_count == 3


@respx.mock
def test_a_download_that_breaks_off_mid_file_is_unreadable_not_short(make_client, fake_time):
    body = Chunks([line(0).encode(), line(1).encode()], then=httpx.ReadError("reset"))
    route = respx.get(URL).mock(return_value=httpx.Response(200, stream=body))
    client = make_client()
    seen = []
    with pytest.raises(ResultsUnreadable, match="broke off after line 2") as info:
        for result in client.iter_bulk_results(URL):
            seen.append(result.index)
    assert seen == [0, 1] and info.value.line == 2
    assert isinstance(info.value.__cause__, httpx.ReadError)
    # Not retried here: a second download would yield records 0 and 1 again.
    assert route.call_count == 1 and client.retries == 0
    assert isinstance(info.value, AttentiveError)  # what callers catch as "unreadable"
    assert not isinstance(info.value, TransportError)  # and never retry by themselves


def test_a_truncated_body_is_unreadable():
    """A body that ends mid-line is a broken download, not a shorter file."""
    full = (line(0) + line(1) + line(2)).encode()

    def handler(request: httpx.Request) -> httpx.Response:
        headers = {"content-length": str(len(full))}
        return httpx.Response(200, headers=headers, stream=Chunks([full[:-20]]))

    # A mock transport does not check Content-Length, so this is what a server that closes
    # the connection early looks like without one: the last line cut mid-JSON.
    client = AttentiveClient(
        AttentiveSettings(api_key=SecretStr("k"), base_url=BASE),
        transport=httpx.MockTransport(handler),
    )
    with pytest.raises(ResultsUnreadable, match="line 3 is not JSON"):
        list(client.iter_bulk_results(URL))


@pytest.mark.parametrize(
    "row",
    [
        {"index": 0, "response": {"status": 400, "message": "bad phone"}},
        {"index": 0, "response": {"statusCode": 400, "message": "bad phone"}},
        {"index": 0, "status": 400, "message": "bad phone"},
        {"index": 0, "statusCode": "400", "error": {"message": "bad phone"}},
        {"index": "0", "request": {}, "response": {"statusCode": 400, "error": "bad phone"}},
        {"index": 0, "response": {"status_code": 400, "message": "bad phone"}},
        {"index": 0, "response": {"httpStatus": "400", "message": "bad phone"}},
        {"index": 0, "response": {"code": 400, "message": "bad phone"}},
        {"index": 0, "response": {"status": "ERROR", "code": 400, "message": "bad phone"}},
        {
            "request": {},
            "response": {"status": "Bad Request", "statusCode": 400, "message": "bad phone"},
        },
    ],
)
@respx.mock
def test_the_status_is_read_under_any_plausible_key(make_client, row):
    respx.get(URL).respond(200, text=json.dumps(row) + "\n")
    (result,) = make_client().iter_bulk_results(URL)
    assert (result.index, result.status, result.message) == (0, 400, "bad phone")
    assert not result.accepted and not result.retryable


@respx.mock
def test_lines_without_an_index_are_matched_by_their_order(make_client):
    text = line(None) + "\n  \n" + line(None, 429, "slow down") + line(None, 400, "bad")
    respx.get(URL).respond(200, text=text)
    results = list(make_client().iter_bulk_results(URL))
    assert [(r.index, r.status) for r in results] == [(0, 200), (1, 429), (2, 400)]
    assert results[1].retryable and results[1].message == "slow down"


@pytest.mark.parametrize(
    ("bad", "fragment"),
    [
        ("{not json", "line 2 is not JSON"),
        ("[1, 2]", "line 2 is not a JSON object"),
        ('{"index": 1, "response": {"message": "OK"}}', "line 2 carries no status"),
        ('{"index": 1, "response": {"status": "OK"}}', "line 2: status is not readable"),
        ('{"index": 1, "response": {"status": true}}', "line 2: status is not readable"),
        ('{"index": -1, "response": {"status": 200}}', "line 2: index is not readable"),
        ('{"index": 1.5, "response": {"status": 200}}', "line 2: index is not readable"),
    ],
)
@respx.mock
def test_an_unreadable_line_names_its_line_number(make_client, bad, fragment):
    respx.get(URL).respond(200, text=line(0) + bad + "\n" + line(2))
    with pytest.raises(ResultsUnreadable, match=fragment) as info:
        list(make_client().iter_bulk_results(URL))
    assert info.value.line == 2


# -- against the emulator, over a real socket ------------------------------------------


def finished_job(client: AttentiveClient, users: int) -> str:
    batch = [
        {"identifiers": {"clientUserId": f"c{n}"}, "attributes": {"custom": {"vip": True}}}
        for n in range(users)
    ]
    batch[3]["identifiers"] = {"phone": "not a phone"}
    job_id = client.submit_bulk_users(batch)
    deadline = time.monotonic() + 10
    while not (job := client.get_bulk_job(job_id)).finished:
        assert time.monotonic() < deadline, "the emulator job did not finish"
        time.sleep(0.01)
    assert job.results_url
    return job.results_url


def emulator_client(server: EmulatorServer, transport: httpx.BaseTransport | None = None):
    settings = AttentiveSettings(
        api_key=SecretStr(DEMO_API_KEY), base_url=server.base_url, backoff_base=0.01
    )
    return AttentiveClient(settings, transport=transport)


def test_the_emulator_results_file_streams_to_one_result_per_user():
    with EmulatorServer(EmulatorConfig(job_delay=0)) as server:
        client = emulator_client(server)
        results = list(client.iter_bulk_results(finished_job(client, 256)))
    assert [r.index for r in results] == list(range(256))
    assert [r.index for r in results if not r.accepted] == [3]
    assert results[3].status == 400 and results[0].request["identifiers"] == {"clientUserId": "c0"}


def test_an_emulator_results_file_cut_mid_way_is_unreadable():
    with EmulatorServer(EmulatorConfig(job_delay=0)) as server:
        url = finished_job(emulator_client(server), 256)
        client = emulator_client(server, CutResults(limit=10_000))
        seen = 0
        with pytest.raises(ResultsUnreadable, match="broke off") as info:
            for _ in client.iter_bulk_results(url):
                seen += 1
    assert 0 < seen < 256 and info.value.line == seen


@pytest.mark.parametrize(
    "line",
    [
        '{"index": 0, "response": {"status": 400, "message": "bad \\ud83d emoji"}}',
        '{"index": 0, "response": {"status": 400, "score": NaN}}',
    ],
)
def test_a_line_only_the_standard_json_reader_takes_is_still_a_record(line):
    """orjson refuses a lone surrogate escape and NaN; such a line is a readable record,
    not an unreadable file (which would count the whole job as applied)."""
    from attentive_sync.attentive._results import parse_result_line

    result = parse_result_line(line, 1, 0)
    assert (result.index, result.status, result.accepted) == (0, 400, False)
