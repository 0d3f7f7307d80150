"""POST /loyaltylion: acknowledgement rules, identity matching, units and bad deliveries."""

from __future__ import annotations

import copy
from datetime import datetime, timezone

import pytest
from sqlalchemy import insert, select
from starlette.testclient import TestClient

from attentive_sync.domain.loyalty.catalogue import RECIPIENT_KEY, UNMATCHED_BASE
from attentive_sync.intake import LoyaltyLionAdapter, create_intake_app
from attentive_sync.sources.schema import customers
from attentive_sync.store import Store
from attentive_sync.store.tables import loyalty_events
from tests.intake.conftest import SECRET as INTAKE_SECRET
from tests.intake.conftest import stored_events
from tests.intake.lion import BUILT, SECRET, customer, delivery, signed, tier

SILVER = tier("Silver", 2, "200.01", "400.00")


@pytest.fixture
def program(store: Store) -> Store:
    """The state store doubling as the program's database, with one customer."""
    with store.engine.begin() as conn:
        conn.execute(
            insert(customers).values(
                customer_id=2134606599,
                email="Jessica@Example.com ",
                enrolled_at=datetime(2015, 12, 10, tzinfo=timezone.utc),
            )
        )
    return store


def lion_client(store: Store, match_by: str = "merchant_id") -> TestClient:
    app = create_intake_app(
        store, INTAKE_SECRET, platforms=[LoyaltyLionAdapter(SECRET)], match_by=match_by
    )
    return TestClient(app)


@pytest.fixture
def client(program: Store):
    with lion_client(program) as test_client:
        yield test_client


def only_row(store: Store) -> dict:
    with store.engine.connect() as conn:
        return dict(conn.execute(select(loyalty_events)).mappings().one())


def test_unknown_topics_are_acknowledged_counted_and_not_queued(client, program) -> None:
    for n, topic in enumerate(["customer.enrolled", "loyalty_emails/unsubscribe"]):
        document = {"id": f"u{n}", "topic": topic, "created_at": "2025-06-01T00:00:00Z"}
        response = client.post("/loyaltylion", **signed(document | {"payload": {}}))
        assert response.status_code == 200
        assert response.json()["acknowledged"] == "unknown_topic"
    assert client.get("/health").json()["acknowledged"] == {
        "unknown_topic:customer.enrolled": 1,
        "unknown_topic:loyalty_emails/unsubscribe": 1,
    }
    assert stored_events(program) == 0


def test_customers_update_is_queued_as_a_profile_write_not_an_event(client, program) -> None:
    document = {
        "id": "bff1bddb-6cd8-4c2c-9619-18744657053c",
        "topic": "customers/update",
        "created_at": "2025-01-01T03:00:05.000Z",
        "customer": customer(
            loyalty_tier_membership={"loyalty_tier": tier("Silver", 2, "200.01", "400.00")}
        ),
    }
    response = client.post("/loyaltylion", **signed(document))
    assert (response.status_code, response.json()["queued"]) == (202, "profile")
    assert stored_events(program) == 0
    (seq,) = [row.seq for row in program.writes.lease(10, 60, "t")]
    (write,) = program.writes.get([seq])
    assert write.customer_id == 2134606599
    assert write.attributes == {
        "loyalty_tier": "Silver",
        "loyalty_points_balance": 200,
        "loyalty_insights_segment": "Loyal",
    }


def test_a_matched_customer_is_queued_under_the_program_id(client, program) -> None:
    assert client.post("/loyaltylion", **signed(BUILT["customer.tier_upgraded"])).status_code == 202
    row = only_row(program)
    assert row["customer_id"] == 2134606599
    assert row["topic"] == "tier_upgraded"
    assert RECIPIENT_KEY not in row["payload"]
    assert row["occurred_at"].isoformat().startswith("2025-06-01T12:00:00")


@pytest.mark.parametrize(
    ("match_by", "changes"),
    [
        ("platform_id", {"id": 2134606599, "merchant_id": "1"}),
        ("email", {"merchant_id": "1", "email": "JESSICA@example.com"}),
    ],
)
def test_the_match_field_is_configurable(program, match_by, changes) -> None:
    document = copy.deepcopy(BUILT["customer.tier_upgraded"])
    document["payload"]["properties"]["customer"].update(changes)
    with lion_client(program, match_by) as client:
        assert client.post("/loyaltylion", **signed(document)).status_code == 202
    assert only_row(program)["customer_id"] == 2134606599


def test_an_unmatched_customer_is_queued_with_the_identifiers_it_carries(client, program) -> None:
    document = copy.deepcopy(BUILT["customer.tier_upgraded"])
    document["payload"]["properties"]["customer"]["merchant_id"] = "555"
    assert client.post("/loyaltylion", **signed(document)).status_code == 202
    row = only_row(program)
    assert row["customer_id"] >= UNMATCHED_BASE
    assert row["payload"][RECIPIENT_KEY] == {"email": "jessica@example.com"}


def test_the_same_unmatched_customer_keeps_one_synthetic_id(client, program) -> None:
    first = copy.deepcopy(BUILT["customer.tier_upgraded"])
    first["payload"]["properties"]["customer"]["merchant_id"] = "555"
    second = copy.deepcopy(first) | {"id": "another-delivery"}
    client.post("/loyaltylion", **signed(first))
    client.post("/loyaltylion", **signed(second))
    with program.engine.connect() as conn:
        ids = set(conn.scalars(select(loyalty_events.c.customer_id)))
    assert len(ids) == 1


def test_a_redelivery_is_a_duplicate_even_with_a_new_send_time(client, program) -> None:
    document = BUILT["customer.claimed_reward"]
    assert client.post("/loyaltylion", **signed(document)).status_code == 202
    resent = copy.deepcopy(document) | {"created_at": "2025-06-01T13:00:00.000Z"}
    again = client.post("/loyaltylion", **signed(resent))
    assert (again.status_code, again.json()["duplicate"]) == (200, True)
    assert stored_events(program) == 1


def test_a_reused_id_with_other_content_is_409_naming_it(client, program) -> None:
    document = BUILT["customer.claimed_reward"]
    assert client.post("/loyaltylion", **signed(document)).status_code == 202
    changed = copy.deepcopy(document)
    changed["payload"]["properties"]["voucher_code"] = "OTHER"
    response = client.post("/loyaltylion", **signed(changed))
    assert response.status_code == 409
    assert document["id"] in response.json()["error"]
    assert only_row(program)["payload"]["voucher_code"] == "LION-5OFF"


def test_spend_based_tiers_send_spend_required_and_bounds_in_subunits(client, program) -> None:
    document = delivery(
        "customer.approaching_tier_upgrade",
        {
            "customer": customer(),
            "current_tier": tier("Silver", 2, "100.00", "249.99"),
            "next_tier": tier("Gold", 3, "250.00", None),
            "points_required": None,
            "spend_required": 12.5,
        },
    )
    assert client.post("/loyaltylion", **signed(document)).status_code == 202
    payload = only_row(program)["payload"]
    assert payload["spend_required"] == 12.5 and "points_required" not in payload


@pytest.mark.parametrize(
    ("mutate", "says"),
    [
        (lambda d: d["payload"]["properties"]["customer"].update(id=True), "customer.id"),
        (lambda d: d["payload"]["properties"]["customer"].update(id="6932"), "customer.id"),
        (lambda d: d["payload"]["properties"].pop("customer"), "payload.customer"),
        (
            lambda d: d["payload"]["properties"]["new_tier"].update(lower_bound="1.001"),
            "lower_bound",
        ),
        (lambda d: d.update(id=""), "id"),
        (lambda d: d.update(payload=[1]), "payload"),
        (lambda d: d["payload"].update(created_at="yesterday"), "payload.created_at"),
    ],
)
def test_a_malformed_delivery_is_400_naming_the_field(client, program, mutate, says) -> None:
    document = copy.deepcopy(BUILT["customer.tier_upgraded"])
    mutate(document)
    response = client.post("/loyaltylion", **signed(document))
    assert response.status_code == 400
    assert says in response.json()["error"]
    assert stored_events(program) == 0


def test_a_delivery_that_is_not_json_typed_is_415(client, program) -> None:
    request = signed(BUILT["customer.tier_upgraded"])
    request["headers"]["content-type"] = "text/plain"
    assert client.post("/loyaltylion", **request).status_code == 415
    assert stored_events(program) == 0


def test_an_intake_without_the_secret_has_no_loyaltylion_endpoint(store: Store) -> None:
    with TestClient(create_intake_app(store, INTAKE_SECRET)) as client:
        assert client.post(
            "/loyaltylion", **signed(BUILT["customer.tier_upgraded"])
        ).status_code in (
            404,
            405,
        )
