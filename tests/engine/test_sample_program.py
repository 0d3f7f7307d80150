"""The sample program in examples/program, loaded with `attentive-sync data load` and run
through the flows' engine against the emulator, as the README shows.

Its customers carry what a strict Attentive met in real data: national, extension and
vanity phones, a whitespace-only state, malformed and mixed-case emails, a customer known
only by clientUserId. Each test asserts the exact payloads that reached the emulator.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import SecretStr
from support.program import make_runtime
from support.transports import Recording
from typer.testing import CliRunner

from attentive_sync.attentive import AttentiveClient
from attentive_sync.cli import app
from attentive_sync.domain.export_config import ExportConfig
from attentive_sync.domain.loyalty.selection import StalePolicy
from attentive_sync.engine.audience.export import run_backfill, run_incremental
from attentive_sync.engine.delivery.collaborators import direct_waiter, thread_pool_sender
from attentive_sync.engine.loyalty.relay import EventsConfig, run_relay, thread_deliverer
from attentive_sync.engine.notices.delivery import run_reward_reminder
from attentive_sync.engine.runtime import Runtime
from attentive_sync.settings import DEMO_API_KEY, AttentiveSettings
from attentive_sync.store.records import NewEvent

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "program"
# The configuration the deployments run with, as prefect.yaml declares it.
CONFIG = ExportConfig.model_validate(
    yaml.safe_load((ROOT / "deployments" / "prefect.yaml").read_text())["definitions"][
        "export_config"
    ]
)
IN_OCTOBER = datetime(2026, 10, 10, 12, tzinfo=timezone.utc)


@dataclasses.dataclass
class Sample:
    runtime: Runtime
    wire: Recording


@pytest.fixture
def sample(tmp_path, emulator) -> Iterator[Sample]:
    url = f"sqlite:///{tmp_path / 'program.db'}"
    files = [str(path) for path in sorted(EXAMPLES.glob("*.csv"))]
    loaded = CliRunner().invoke(app, ["data", "load", *files, "--url", url])
    assert loaded.exit_code == 0, loaded.output
    wire = Recording()
    settings = AttentiveSettings(
        api_key=SecretStr(DEMO_API_KEY), base_url=emulator.base_url, backoff_base=0.01
    )
    runtime = make_runtime(url, emulator.base_url)
    recorded = dataclasses.replace(runtime, client=AttentiveClient(settings, transport=wire))
    yield Sample(recorded, wire)
    recorded.client.close()
    runtime.close()


def collaborators(runtime: Runtime):
    return (
        thread_deliverer(runtime, 2),
        thread_pool_sender(runtime, "t", 2),
        direct_waiter(runtime, 10.0, "t"),
    )


def backfill(runtime: Runtime):
    _, send, wait = collaborators(runtime)
    return run_backfill(runtime, CONFIG, "sample", send, wait)


def incremental(runtime: Runtime):
    _, send, wait = collaborators(runtime)
    return run_incremental(runtime, CONFIG, "t", send, wait)


def relay(runtime: Runtime, events: EventsConfig | None = None):
    return run_relay(runtime, CONFIG, events or EventsConfig(), "t", collaborators(runtime))


def by_client_id(records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        ids = record.get("identifiers") or record["user"].get("externalIdentifiers", {})
        found.setdefault(ids.get("clientUserId") or record_key(record), []).append(record)
    return found


def record_key(record: dict[str, Any]) -> str:
    ids = record.get("identifiers") or record["user"]
    return ids.get("phone") or ids.get("email")


def strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def test_the_sample_program_backfills_as_documented(sample, emulator):
    report = backfill(sample.runtime)
    then = incremental(sample.runtime)

    assert report.problems() == [] and then.problems() == []
    counts = report.counts
    # One record per customer: eight customers are in the exported audiences, ten memberships.
    assert (counts["members_read"], counts["quarantined"], counts["invalid_emails_dropped"]) == (
        8,
        1,
        1,
    )
    assert (counts["records_sent"], counts["held_back"], counts["accepted"]) == (7, 0, 7)
    assert then.counts["records_sent"] == 0
    sent = by_client_id(sample.wire.bulk_users())
    # A mixed-case email goes out lower-cased; a national number as E.164; JSON text as CSV.
    assert sent["cu-1"][0] == {
        "identifiers": {
            "phone": "+14155552671",
            "email": "mixed.case@example.com",
            "clientUserId": "cu-1",
        },
        "attributes": {
            "firstName": "Ada",
            "lastName": "Lovelace",
            "location": {"city": "San Francisco", "state": "CA", "zip": "94103", "country": "US"},
            "demographic": {"dateOfBirth": "1990-12-10"},
            "custom": {
                "tier": "Gold",
                "insights_segment": "Loyal",
                "favorite_categories": "shoes,hats",
                "newsletter": True,
                "vip": True,
            },
        },
    }
    # A state of "  " is no state: the field is left out, never sent as "".
    assert sent["cu-2"][0]["attributes"]["location"] == {"city": "London", "country": "GB"}
    # two@@example.com is left out; the record goes to its clientUserId.
    assert sent["cu-3"][0]["identifiers"] == {"clientUserId": "cu-3"}
    # An extension is not part of the number; a vanity number is its digits.
    assert sent["cu-5"][0]["identifiers"] == {
        "phone": "+12125550147",
        "clientUserId": "cu-5",
        "shopifyId": "sh-5",
    }
    assert sent["+18003569377"][0]["identifiers"] == {"phone": "+18003569377"}
    assert sent["lin@example.com"][0]["attributes"]["lastName"] == "Ó Súilleabháin"
    everything = list(strings(sample.wire.bulk_users()))
    assert all(text.strip() for text in everything), "an empty or blank value was sent"
    assert not any("@@" in text or text.endswith("@example.") for text in everything)

    # a1039@example. was the customer's only identifier: quarantined, never sent.
    (parked,) = sample.runtime.store.quarantine.list()
    assert (parked.customer_id, parked.reason_code) == (4, "invalid_email")
    assert "no other identifier" in parked.detail and "a1039" not in parked.detail
    ada = emulator.state.find_user(clientUserId="cu-1")["attributes"]["custom"]
    assert (ada["vip"], ada["newsletter"]) == (True, True)
    assert "state" not in emulator.state.find_user(clientUserId="cu-2")["attributes"]["location"]
    assert emulator.state.find_user(clientUserId="cu-2")["attributes"]["custom"]["churn_risk"]
    assert emulator.state.find_user(email="mixed.case@example.com") is not None
    assert "invalid email" not in report.summary()
    assert "left out" in report.to_markdown()


def test_events_go_to_clean_identifiers_and_external_only_users_are_counted(sample, emulator):
    referral = {"referred_customer": "Sam", "points_awarded": 200}
    sample.runtime.store.events.enqueue(
        [
            NewEvent(f"ref-{cid}", "referral_complete", cid, IN_OCTOBER, referral)
            for cid in (1, 3, 4, 6)
        ]
    )

    report = relay(sample.runtime)

    assert report.problems() == []
    users = {event["externalEventId"]: event["user"] for event in sample.wire.events()}
    assert users == {
        "ref-1": {
            "phone": "+14155552671",
            "email": "mixed.case@example.com",
            "externalIdentifiers": {"clientUserId": "cu-1"},
        },
        "ref-3": {"externalIdentifiers": {"clientUserId": "cu-3"}},
        "ref-6": {"externalIdentifiers": {"clientUserId": "cu-6"}},
    }
    assert report.counts["accepted_events"] == 3 and report.counts["quarantined"] == 1
    assert report.counts["events_external_ids_only"] == 2
    # Customer 3's event and their loyalty profile write each went without the bad email.
    assert report.counts["invalid_emails_dropped"] == 2
    assert "linked to a phone or email" in report.to_markdown()
    assert "linked to a phone or email" in report.summary()
    (parked,) = sample.runtime.store.quarantine.list()
    assert (parked.customer_id, parked.reason_code) == (4, "invalid_email")
    assert emulator.state.list_events("Loyalty Referral Complete")["total"] == 3


def test_the_reminder_skips_only_customers_who_received_a_reward_available_event(sample, emulator):
    def reward_available(cid: int, rewards: list[dict[str, Any]]) -> NewEvent:
        payload = {"available_rewards": rewards, "points_balance": 300}
        return NewEvent(f"ra-{cid}", "reward_available", cid, IN_OCTOBER, payload)

    listed = [
        {"reward_id": 2, "title": "Free shipping", "kind": "free_shipping", "cost_points": 250}
    ]
    events = sample.runtime.store.events
    events.enqueue([reward_available(5, listed)])
    skipped = relay(sample.runtime, EventsConfig(stale_policy=StalePolicy.SKIP))
    assert skipped.counts["stale_skipped"] == 1  # October is more than 12 hours ago
    events.enqueue([reward_available(1, listed), reward_available(2, [])])
    relayed = relay(sample.runtime)
    assert (relayed.counts["accepted_events"], relayed.counts["dropped"]) == (1, 1)
    assert [e["externalEventId"] for e in sample.wire.events()] == ["ra-1"]

    report = run_reward_reminder(
        sample.runtime,
        CONFIG,
        EventsConfig(),
        datetime(2026, 11, 15, tzinfo=timezone.utc),
        collaborators(sample.runtime),
        "t",
    )

    assert report.problems() == []
    # Eligible: 1, 2, 5 and 7. Only 1 received its reward_available event; 2's was dropped
    # (no supported reward) and 5's skipped as stale, so both are reminded, as is 7.
    counts = report.counts
    assert (counts["eligible"], counts["already_notified"], counts["to_send"]) == (4, 1, 3)
    reminded = [
        event["user"]
        for event in sample.wire.events()
        if event["type"] == "Loyalty Reward Reminder"
    ]
    assert sorted(record_key({"user": u}) or "" for u in reminded) == [
        "+12125550147",
        "+18003569377",
        "+442079460958",
    ]
    assert emulator.state.list_events("Loyalty Reward Reminder")["total"] == 3
