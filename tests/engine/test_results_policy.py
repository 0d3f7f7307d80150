"""Results files in the shapes Attentive may send, settled end to end against the emulator.

Attentive documents a results file only as "a record of each request and its corresponding
response". Lines without an index are matched to the records by their order; a COMPLETED
job whose file cannot be read at all counts its records as applied (and says so) rather
than sending them again for ever.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from pydantic import SecretStr
from support.program import CONFIG
from support.transports import RewriteResults

from attentive_sync.attentive import AttentiveClient
from attentive_sync.domain.errors import RecordRejected
from attentive_sync.engine.audience.export import run_incremental
from attentive_sync.engine.delivery.collaborators import direct_waiter, thread_pool_sender
from attentive_sync.engine.mapping import Mapper, identifiers_for
from attentive_sync.engine.runtime import Runtime
from attentive_sync.settings import DEMO_API_KEY, AttentiveSettings
from attentive_sync.sources.loyalty import load_customers
from attentive_sync.store.records import NewDelta


def mappable(runtime: Runtime, count: int) -> list[dict[str, Any]]:
    mapper, found = Mapper(CONFIG), []
    for row in load_customers(runtime.source, range(1, 400)):
        try:
            mapper.map(row, {"vip": True})
        except RecordRejected:
            continue
        if row.get("client_user_id"):
            found.append(row)
    return found[:count]


def rewriting(runtime: Runtime, base_url: str, rewrite: Callable[[list[dict]], str]):
    transport = RewriteResults(rewrite)
    settings = AttentiveSettings(
        api_key=SecretStr(DEMO_API_KEY), base_url=base_url, backoff_base=0.01
    )
    client = AttentiveClient(settings, transport=transport)
    return dataclasses.replace(runtime, client=client), transport


def incremental(runtime: Runtime):
    return run_incremental(
        runtime, CONFIG, "t", thread_pool_sender(runtime, "t", 1), direct_waiter(runtime, 5.0)
    )


def enqueue_vip(runtime: Runtime, rows: list[dict[str, Any]]) -> None:
    now = datetime.now(timezone.utc)
    runtime.store.deltas.enqueue([NewDelta("vip", r["customer_id"], "enter", now) for r in rows])


def jsonl(lines: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(line) + "\n" for line in lines)


def test_lines_of_just_request_and_response_settle_by_their_order(runtime, emulator):
    def request_and_response(lines: list[dict]) -> str:
        out = []
        for n, line in enumerate(lines):
            status = 400 if n == 1 else line["response"]["status"]
            message = "email refused" if n == 1 else line["response"]["message"]
            out.append(
                {"request": line["request"], "response": {"statusCode": status, "message": message}}
            )
        return jsonl(out)

    shaped, transport = rewriting(runtime, emulator.base_url, request_and_response)
    rows = mappable(runtime, 3)
    enqueue_vip(runtime, rows)

    report = incremental(shaped)

    assert transport.files == 1 and report.problems() == []
    counts = report.counts
    assert (counts["accepted"], counts["rejected"], counts["retried"]) == (2, 1, 0)
    assert counts["assumed_applied"] == 0
    (parked,) = runtime.store.quarantine.list()
    assert parked.customer_id == rows[1]["customer_id"]
    assert (parked.reason_code, parked.detail) == ("rejected_by_attentive", "email refused")
    ledger = runtime.store.accepted.for_customers([r["customer_id"] for r in rows])
    assert {cid: values["vip"] for cid, values in ledger.items()} == {
        rows[0]["customer_id"]: True,
        rows[2]["customer_id"]: True,
    }
    assert runtime.store.deltas.counts()["done"] == 2
    shaped.client.close()


def bulk_submissions(emulator) -> int:
    return emulator.state.stats()["by_endpoint"].get("bulk_user_attributes", {}).get("202", 0)


def unreadable_content(lines: list[dict]) -> str:
    return jsonl([{"request": line["request"], "response": {"message": "OK"}} for line in lines])


def empty_file(lines: list[dict]) -> str:
    return ""


def test_a_completed_job_whose_results_cannot_be_read_counts_as_applied_once(runtime, emulator):
    for rewrite in (unreadable_content, empty_file):
        shaped, transport = rewriting(runtime, emulator.base_url, rewrite)
        rows = mappable(runtime, 3) if rewrite is unreadable_content else mappable(runtime, 6)[3:]
        enqueue_vip(runtime, rows)
        submitted_before = bulk_submissions(emulator)

        report = incremental(shaped)
        again = incremental(shaped)

        assert transport.files == 1, rewrite.__name__
        counts = report.counts
        assert (counts["records_sent"], counts["jobs_results_unreadable"]) == (3, 1)
        assert (counts["assumed_applied"], counts["accepted"], counts["retried"]) == (3, 0, 0)
        assert "counted as applied and not sent again" in report.to_markdown()
        # Not sent again: the second run has nothing to send, the rows are done.
        assert again.counts["records_sent"] == 0
        assert bulk_submissions(emulator) == submitted_before + 1
        assert runtime.store.deltas.counts()["pending"] == 0
        assert runtime.store.quarantine.summary() == {}
        # Attentive did apply them (the emulator holds them); the ledger does not assume it.
        cids = [r["customer_id"] for r in rows]
        assert runtime.store.accepted.for_customers(cids) == {}
        for row in rows:
            ids = identifiers_for(CONFIG, row).to_wire()
            user = emulator.state.find_user(clientUserId=ids["clientUserId"])
            assert user["attributes"]["custom"]["vip"] is True
        shaped.client.close()


def test_a_completed_job_without_a_results_file_counts_as_applied(runtime, emulator):
    real = runtime.client.get_bulk_job

    def no_results_url(job_id: str):
        return dataclasses.replace(real(job_id), results_url=None)

    runtime.client.get_bulk_job = no_results_url  # type: ignore[method-assign]
    rows = mappable(runtime, 2)
    enqueue_vip(runtime, rows)

    report = incremental(runtime)

    assert (report.counts["assumed_applied"], report.counts["retried"]) == (2, 0)
    assert runtime.store.deltas.counts()["done"] == 2
    assert incremental(runtime).counts["records_sent"] == 0


def test_a_failed_job_is_never_counted_as_applied_whatever_the_case_of_its_status(
    runtime, emulator
):
    real = runtime.client.get_bulk_job

    def failed(job_id: str):
        job = real(job_id)
        return dataclasses.replace(job, status="failed") if job.finished else job

    runtime.client.get_bulk_job = failed  # type: ignore[method-assign]
    enqueue_vip(runtime, mappable(runtime, 2))

    report = incremental(runtime)

    assert (report.counts["assumed_applied"], report.counts["retried"]) == (0, 2)
    assert runtime.store.deltas.counts()["pending"] == 2
