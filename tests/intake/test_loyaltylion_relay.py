"""LoyaltyLion deliveries end to end: signed the LoyaltyLion way into POST /loyaltylion,
through the loyalty-events relay, to the Attentive emulator as the right event type."""

from __future__ import annotations

import copy
from datetime import datetime, timezone
from typing import Any

import pytest
from sqlalchemy import func, insert, select
from starlette.testclient import TestClient
from support.program import CONFIG

from attentive_sync.engine.delivery.collaborators import direct_waiter, thread_pool_sender
from attentive_sync.engine.loyalty.relay import EventsConfig, run_relay, thread_deliverer
from attentive_sync.intake import LoyaltyLionAdapter, create_intake_app
from attentive_sync.sources.schema import customers
from attentive_sync.store.tables import loyalty_events
from tests.intake.conftest import SECRET as INTAKE_SECRET
from tests.intake.lion import (
    BUILT,
    EXPECTED,
    SECRET,
    customer,
    fixture_deliveries,
    signed,
    tier,
)

MERCHANT_ID = 2134606599  # the fixtures' customer.merchant_id

SILVER = tier("Silver", 2, "200.01", "400.00")


def relay(runtime) -> Any:
    collaborators = (
        thread_deliverer(runtime, 4),
        thread_pool_sender(runtime, "test", 2),
        direct_waiter(runtime, 5.0),
    )
    return run_relay(runtime, CONFIG, EventsConfig(), "test", collaborators)


@pytest.fixture
def lion(runtime):
    """The intake with LoyaltyLion mounted, and the fixtures' customer in the program."""
    with runtime.store.engine.begin() as conn:
        conn.execute(
            insert(customers).values(
                customer_id=MERCHANT_ID,
                email="jessica@example.com",
                client_user_id="lion-6932",
                enrolled_at=datetime(2015, 12, 10, tzinfo=timezone.utc),
            )
        )
    app = create_intake_app(
        runtime.store,
        INTAKE_SECRET,
        platforms=[LoyaltyLionAdapter(SECRET)],
        source=runtime.source,
    )
    with TestClient(app) as client:
        yield client


def _deliver_and_relay(runtime, emulator, client: TestClient, topic: str, document: dict):
    response = client.post("/loyaltylion", **signed(document))
    assert response.status_code == 202, response.text
    report = relay(runtime)
    assert report.problems() == []
    assert report.counts["accepted_events"] == 1, report.counts
    (event,) = emulator.state.list_events()["events"]
    expected_type, expected_properties = EXPECTED[topic]
    assert event["type"] == expected_type
    assert event["properties"] == expected_properties
    assert event["externalEventId"] == f"loyaltylion:{document['id']}"
    return event


FIXTURE_TOPICS = [
    "customer.approaching_points_expiration",
    "customer.moved_to_loyal_segment",
    "customer.points_earned",
    "customer.recurring_reward_available_reminder",
    "customer.reward_available_notification",
    "customer.rule_completed",
]


@pytest.mark.parametrize("topic", FIXTURE_TOPICS)
def test_each_published_delivery_arrives_as_its_event(runtime, emulator, lion, topic: str) -> None:
    deliveries = fixture_deliveries()
    assert topic in deliveries, f"no fixture delivery for {topic}"
    _deliver_and_relay(runtime, emulator, lion, topic, deliveries[topic])


def test_every_fixture_delivery_has_a_test() -> None:
    assert set(fixture_deliveries()) <= set(FIXTURE_TOPICS)


@pytest.mark.parametrize("topic", sorted(BUILT))
def test_each_documented_topic_arrives_as_its_event(runtime, emulator, lion, topic: str) -> None:
    _deliver_and_relay(runtime, emulator, lion, topic, BUILT[topic])


def test_the_event_time_is_when_it_happened_not_when_it_was_sent(runtime, emulator, lion) -> None:
    event = _deliver_and_relay(
        runtime, emulator, lion, "customer.tier_upgraded", BUILT["customer.tier_upgraded"]
    )
    assert event["occurredAt"].startswith("2025-06-01T12:00:00")  # sent at 12:05


def test_a_wrong_signature_is_401_and_stores_nothing(runtime, lion) -> None:
    request = signed(BUILT["customer.tier_upgraded"])
    request["headers"]["x-loyaltylion-hmac-sha256"] = "bm90IHRoZSBzaWduYXR1cmU="
    assert lion.post("/loyaltylion", **request).status_code == 401
    del request["headers"]["x-loyaltylion-hmac-sha256"]
    assert lion.post("/loyaltylion", **request).status_code == 401
    with runtime.store.engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(loyalty_events)) == 0


def test_an_unmatched_customers_event_goes_to_the_email_it_carries(runtime, emulator, lion) -> None:
    document = copy.deepcopy(BUILT["customer.tier_upgraded"])
    document["id"] = "unmatched-1"
    person = document["payload"]["properties"]["customer"]
    person.update(id=777, merchant_id="no-such-customer", email="Newcomer@Example.com")
    assert lion.post("/loyaltylion", **signed(document)).status_code == 202
    report = relay(runtime)
    assert report.problems() == [] and report.counts["accepted_events"] == 1
    (event,) = emulator.state.events.select()
    assert event["user"]["email"].lower() == "newcomer@example.com"
    assert event["externalEventId"].endswith("unmatched-1")
    assert runtime.store.quarantine.summary() == {}


def test_a_profile_update_reaches_attentive_as_attributes(runtime, emulator, lion) -> None:
    document = {
        "id": "profile-1",
        "topic": "customers/update",
        "created_at": "2025-01-01T03:00:05.000Z",
        "customer": customer(
            loyalty_tier_membership={"loyalty_tier": tier("Silver", 2, "200.01", "400.00")}
        ),
    }
    response = lion.post("/loyaltylion", **signed(document))
    assert (response.status_code, response.json()["queued"]) == (202, "profile")
    report = relay(runtime)
    assert report.problems() == [] and report.counts["accepted"] == 1
    user = emulator.state.find_user(clientUserId="lion-6932")
    assert user is not None
    custom = user["attributes"]["custom"]
    assert (custom["loyalty_tier"], custom["loyalty_points_balance"]) == ("Silver", 200)
    assert custom["loyalty_insights_segment"] == "Loyal"


def test_a_profile_update_of_an_unknown_customer_is_acknowledged_only(runtime, lion) -> None:
    document = {
        "id": "profile-2",
        "topic": "customers/update",
        "created_at": "2025-01-01T03:00:05.000Z",
        "customer": customer(id=5, merchant_id="nobody", email="nobody@example.com"),
    }
    response = lion.post("/loyaltylion", **signed(document))
    assert (response.status_code, response.json()["acknowledged"]) == (200, "profile_update")
    assert runtime.store.writes.counts()["pending"] == 0
