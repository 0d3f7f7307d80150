"""A malformed value in the source quarantines that customer's record; the run goes on.

Runs the incremental export and the loyalty events relay against the emulator with one
customer's ``date_of_birth`` set to ``1990-13-45`` in the SQLite source (which stores dates
as text, so nothing stops it) and another's ``enrolled_at`` set to ``garbage`` (a column no
mapping reads).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from pydantic import SecretStr
from sqlalchemy import select, text
from starlette.testclient import TestClient
from support.loyalty_samples import SAMPLES
from support.program import CONFIG

from attentive_sync.domain.errors import RecordRejected
from attentive_sync.domain.loyalty.catalogue import EventKey, event_type
from attentive_sync.engine.audience.export import run_incremental
from attentive_sync.engine.delivery.collaborators import direct_waiter, thread_pool_sender
from attentive_sync.engine.loyalty.relay import EventsConfig, run_relay, thread_deliverer
from attentive_sync.engine.mapping import Mapper
from attentive_sync.intake.app import create_intake_app
from attentive_sync.intake.signing import signed_headers
from attentive_sync.sources.loyalty import load_customers
from attentive_sync.sources.schema import customers
from attentive_sync.store.records import NewDelta

SECRET = SecretStr("intake-test-secret")
DETAIL = "column date_of_birth: not a valid date"


def mappable_customers(runtime, config, count: int) -> list[int]:
    """Customers whose rows map cleanly today (the seed also makes unsendable ones)."""
    c = customers.c
    with runtime.source.connect() as conn:
        ids = list(
            conn.scalars(
                select(c.customer_id)
                .where(c.client_user_id.is_not(None), c.date_of_birth.is_not(None))
                .order_by(c.customer_id)
            )
        )
    mapper, found = Mapper(config), []
    for row in load_customers(runtime.source, ids):
        try:
            mapper.map(row, {"vip": True})
        except RecordRejected:
            continue
        found.append(row["customer_id"])
        if len(found) == count:
            return found
    raise AssertionError(f"the seed has fewer than {count} mappable customers")


def corrupt(runtime, customer_id: int, **values: str) -> None:
    """Write text the column's type cannot read, as a source that checks nothing would."""
    with runtime.source.begin() as conn:
        conn.execute(
            text(
                "UPDATE customers SET "
                + ", ".join(f"{name} = :{name}" for name in values)
                + " WHERE customer_id = :cid"
            ),
            {"cid": customer_id, **values},
        )


def client_user_id(runtime, customer_id: int) -> str:
    with runtime.source.connect() as conn:
        return conn.scalar(
            select(customers.c.client_user_id).where(customers.c.customer_id == customer_id)
        )


def attentive_user(emulator, runtime, customer_id: int):
    return emulator.state.find_user(clientUserId=client_user_id(runtime, customer_id))


def test_incremental_quarantines_the_malformed_record_and_sends_the_rest(runtime, emulator):
    ids = mappable_customers(runtime, CONFIG, 6)
    bad, unmapped_bad, now = ids[0], ids[1], datetime.now(timezone.utc)
    corrupt(runtime, bad, date_of_birth="1990-13-45")
    corrupt(runtime, unmapped_bad, enrolled_at="garbage")  # CONFIG does not read enrolled_at
    runtime.store.deltas.enqueue([NewDelta("vip", cid, "enter", now) for cid in ids])

    report = run_incremental(
        runtime, CONFIG, "test", thread_pool_sender(runtime, "test", 2), direct_waiter(runtime, 5.0)
    )

    assert report.problems() == []
    assert report.counts["quarantined"] == 1 and report.counts["accepted"] == 5
    (entry,) = runtime.store.quarantine.list()
    assert (entry.customer_id, entry.reason_code, entry.detail) == (bad, "bad_source_value", DETAIL)
    assert "1990-13-45" not in json.dumps(entry.payload_masked, default=str)
    counts = runtime.store.deltas.counts()
    assert counts["done"] == 5 and counts["pending"] == counts["leased"] == 0
    assert attentive_user(emulator, runtime, bad) is None
    for cid in ids[1:]:
        user = attentive_user(emulator, runtime, cid)
        assert user is not None and user["attributes"]["custom"]["vip"] is True, cid
    # The unread garbage did not hold back the rest of its row: its birthday went out.
    assert "dateOfBirth" in json.dumps(attentive_user(emulator, runtime, unmapped_bad))


def post_event(client: TestClient, event_id: str, cid: int, at: datetime) -> None:
    body = json.dumps(
        {
            "id": event_id,
            "topic": EventKey.TIER_UPGRADED.value,
            "created_at": at.isoformat(),
            "customer_id": cid,
            "payload": SAMPLES[EventKey.TIER_UPGRADED],
        }
    ).encode()
    response = client.post("/events", content=body, headers=signed_headers(SECRET, body))
    assert response.status_code in (200, 201, 202), response.text


def relay(runtime, export):
    collaborators = (
        thread_deliverer(runtime, 4),
        thread_pool_sender(runtime, "test", 2),
        direct_waiter(runtime, 5.0),
    )
    return run_relay(runtime, export, EventsConfig(), "test", collaborators)


@pytest.fixture
def intake(runtime):
    with TestClient(create_intake_app(runtime.store, SECRET)) as client:
        yield client


def test_relay_sends_events_of_a_customer_whose_bad_value_it_does_not_read(
    runtime, emulator, intake
):
    """The relay's identifiers read no date: a malformed birthday must not stop anything."""
    ids, now = mappable_customers(runtime, CONFIG, 3), datetime.now(timezone.utc)
    corrupt(runtime, ids[0], date_of_birth="1990-13-45", enrolled_at="garbage")
    for n, cid in enumerate(ids):
        post_event(intake, f"evt-{n}", cid, now)

    report = relay(runtime, CONFIG)

    assert report.problems() == []
    assert report.counts["accepted_events"] == 3 and report.counts["quarantined"] == 0
    assert runtime.store.quarantine.summary() == {}
    assert emulator.state.list_events()["total"] == 3
    assert report.counts["profile_writes_queued"] == 3 and report.counts["accepted"] == 3
    assert attentive_user(emulator, runtime, ids[0])["attributes"]["custom"]  # profile written


def test_relay_quarantines_the_event_whose_identifier_is_unreadable(runtime, emulator, intake):
    """With a mapping that reads the malformed column (here a custom identifier), that
    customer's event is quarantined with the column named; the others are delivered."""
    export = CONFIG.model_copy(update={"extra_identifiers": ["date_of_birth"]})
    ids, now = mappable_customers(runtime, export, 4), datetime.now(timezone.utc)
    bad = ids[2]
    corrupt(runtime, bad, date_of_birth="1990-13-45")
    for n, cid in enumerate(ids):
        post_event(intake, f"evt-{n}", cid, now)

    report = relay(runtime, export)

    assert report.problems() == []
    assert report.counts["leased"] == 4
    assert report.counts["quarantined"] == 1 and report.counts["accepted_events"] == 3
    (entry,) = runtime.store.quarantine.list()
    assert (entry.customer_id, entry.reason_code, entry.detail) == (bad, "bad_source_value", DETAIL)
    assert runtime.store.events.counts()["done"] == 3
    received = [(json.dumps(e["user"]), e["type"]) for e in emulator.state.list_events()["events"]]
    assert len(received) == 3
    for cid in ids:
        mine = [kind for user, kind in received if f'"{client_user_id(runtime, cid)}"' in user]
        assert mine == ([] if cid == bad else [event_type(EventKey.TIER_UPGRADED)]), cid
    # The run went on to the profiles, for the three customers whose events went out.
    assert report.counts["profile_writes_queued"] == 3 and report.counts["accepted"] == 3
