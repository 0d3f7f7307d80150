"""Loyalty events end to end: signed webhooks into the intake, through the relay, to Attentive."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from pydantic import SecretStr
from sqlalchemy import select
from starlette.testclient import TestClient
from support.loyalty_samples import EXPECTED_PROPERTIES, SAMPLES
from support.program import CONFIG

from attentive_sync.domain.loyalty.catalogue import EventKey, event_type
from attentive_sync.domain.loyalty.selection import EventSelection, StalePolicy
from attentive_sync.engine.delivery.collaborators import direct_waiter, thread_pool_sender
from attentive_sync.engine.loyalty.relay import EventsConfig, run_relay, thread_deliverer
from attentive_sync.intake.app import create_intake_app
from attentive_sync.intake.signing import signed_headers
from attentive_sync.sources.schema import customers

SECRET = SecretStr("intake-test-secret")


def customer(runtime, *, usable: bool = True) -> int:
    c = customers.c
    where = (
        (c.client_user_id.is_not(None) & c.email.is_not(None))
        if usable
        else (c.phone.is_(None) & c.email.is_(None) & c.client_user_id.is_(None))
    )
    with runtime.source.connect() as conn:
        row = conn.execute(select(c.customer_id).where(where).order_by(c.customer_id).limit(1))
        return row.scalar_one()


def post_event(client: TestClient, event_id: str, key: EventKey, cid: int, at: datetime) -> int:
    body = json.dumps(
        {
            "id": event_id,
            "topic": key.value,
            "created_at": at.isoformat(),
            "customer_id": cid,
            "payload": SAMPLES[key],
        }
    ).encode()
    response = client.post("/events", content=body, headers=signed_headers(SECRET, body))
    return response.status_code


def relay(runtime, events: EventsConfig | None = None):
    collaborators = (
        thread_deliverer(runtime, 4),
        thread_pool_sender(runtime, "test", 2),
        direct_waiter(runtime, 5.0),
    )
    return run_relay(runtime, CONFIG, events or EventsConfig(), "test", collaborators)


@pytest.fixture
def intake(runtime):
    with TestClient(create_intake_app(runtime.store, SECRET)) as client:
        yield client


def test_each_of_the_thirteen_types_arrives_once_with_its_name(runtime, emulator, intake):
    cid, now = customer(runtime), datetime.now(timezone.utc)
    for n, key in enumerate(EventKey):
        assert post_event(intake, f"evt-{n}", key, cid, now - timedelta(minutes=n)) in (
            200,
            201,
            202,
        )
    three_ago = now - timedelta(minutes=3)
    assert post_event(intake, "evt-3", EventKey.REWARD_AVAILABLE, cid, three_ago) == 200  # again
    assert post_event(intake, "evt-3", EventKey.REWARD_AVAILABLE, cid, now) == 409  # changed
    selection = EventSelection(include_deprecated=True)
    report = relay(runtime, EventsConfig(selection=selection))
    assert report.problems() == []
    assert report.counts["leased"] == 13 and report.counts["accepted_events"] == 13
    received = emulator.state.list_events()
    assert received["duplicates"] == 0
    by_id = {e["externalEventId"]: e for e in received["events"]}
    for n, key in enumerate(EventKey):
        body = by_id[f"evt-{n}"]
        assert body["type"] == event_type(key)
        expected = EXPECTED_PROPERTIES.get(key, SAMPLES[key])
        assert body["properties"] == {k: v for k, v in expected.items() if v is not None}
    # One profile write per customer and round; the latest covers the earlier ones.
    assert report.counts["writes_leased"] >= 1 and report.counts["accepted"] == 1


def test_some_sends_only_the_chosen_keys_and_counts_the_rest(runtime, emulator, intake):
    cid, now = customer(runtime), datetime.now(timezone.utc)
    for n, key in enumerate(EventKey):
        post_event(intake, f"s-{n}", key, cid, now)
    report = relay(
        runtime, EventsConfig(selection=EventSelection(mode="some", keys=["tier_upgraded"]))
    )
    assert report.counts["accepted_events"] == 1
    assert report.counts["not_selected"] == 12
    assert report.problems() == []
    types = {e["type"] for e in emulator.state.list_events()["events"]}
    assert types == {"Loyalty Tier Upgraded"}


def test_customer_without_identifier_is_quarantined_and_others_sent(runtime, emulator, intake):
    good, bad, now = customer(runtime), customer(runtime, usable=False), datetime.now(timezone.utc)
    post_event(intake, "q-1", EventKey.TIER_UPGRADED, bad, now)
    post_event(intake, "q-2", EventKey.TIER_UPGRADED, good, now)
    report = relay(runtime)
    assert report.counts["quarantined"] == 1 and report.counts["accepted_events"] == 1
    assert runtime.store.quarantine.summary() == {"no_identifier": 1}


def test_stale_events_are_counted_and_follow_the_policy(runtime, emulator, intake):
    cid, old = customer(runtime), datetime.now(timezone.utc) - timedelta(hours=13)
    post_event(intake, "old-1", EventKey.TIER_UPGRADED, cid, old)
    post_event(intake, "old-2", EventKey.REWARD_CLAIMED, cid, old)
    report = relay(runtime, EventsConfig(stale_policy=StalePolicy.SKIP))
    assert report.counts["stale_skipped"] == 2 and report.counts["accepted_events"] == 0
    assert any("older than 12 hours" in note for note in report.notes)
    assert emulator.state.list_events()["total"] == 0
