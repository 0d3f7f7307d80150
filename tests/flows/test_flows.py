"""The Prefect shell: retry condition, deployments from prefect.yaml, and the flows under a
real (temporary) Prefect server against the emulator."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from datetime import datetime, timezone

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowFilter, FlowFilterName
from prefect.states import Completed, Failed
from prefect.testing.utilities import prefect_test_harness
from sqlalchemy import select
from support.program import CONFIG

from attentive_sync.attentive import AuthenticationError, ServerError
from attentive_sync.cli.run_cmds import deployment_names
from attentive_sync.engine import runtime as runtime_module
from attentive_sync.engine.audience import export as export_module
from attentive_sync.engine.delivery import collaborators as collaborators_module
from attentive_sync.flows.registry import FLOWS, deployment_specs, runner_deployments
from attentive_sync.settings import DEMO_API_KEY
from attentive_sync.sources.schema import customers
from attentive_sync.store import Store
from attentive_sync.store.records import NewDelta, NewEvent
from attentive_sync.tasks.bulk import bulk_send, retry_on_retryable


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (Failed(data=ServerError("503")), True),
        (Failed(data=AuthenticationError("401")), False),
        (Failed(data=ValueError("bug")), False),
        (Completed(data=1), False),
    ],
)
def test_retry_condition_retries_only_retryable_errors(state, expected):
    assert retry_on_retryable(bulk_send, None, state) is expected


def test_bulk_send_has_retries_and_a_plain_function_condition():
    import inspect

    assert bulk_send.retries == 3
    assert inspect.isfunction(bulk_send.retry_condition_fn)


def test_prefect_yaml_declares_every_flow_with_schedules_and_limits():
    specs = deployment_specs()
    assert set(specs) == set(FLOWS)
    # The CLI answers a misspelt flow name from prefect.yaml, before Prefect is imported.
    assert deployment_names() == list(specs)
    deployments = {d.name: d for d in runner_deployments()}
    for name in ("audience-incremental", "loyalty-events"):
        assert deployments[name].concurrency_limit == 1
        assert deployments[name].schedules[0].schedule.interval.total_seconds() == 30
    changes = deployments["loyalty-changes"]
    assert changes.concurrency_limit == 1
    assert changes.schedules[0].schedule.interval.total_seconds() == 180
    assert deployments["reward-reminder"].schedules[0].schedule.cron == "0 9 1 * *"
    assert deployments["expiry-notice"].schedules[0].schedule.cron == "0 9 * * *"
    assert deployments["audience-backfill"].schedules == []


@pytest.fixture(scope="module")
def harness() -> Iterator[None]:
    with prefect_test_harness(server_startup_timeout=60):
        yield


@pytest.fixture
def flow_env(db_url, emulator, monkeypatch, harness):
    monkeypatch.setenv("ATTENTIVE_SYNC_DB_URL", db_url)
    monkeypatch.setenv("ATTENTIVE_SYNC_POLL_INTERVAL_SECONDS", "0.1")
    monkeypatch.setenv("ATTENTIVE_BASE_URL", emulator.base_url)
    monkeypatch.setenv("ATTENTIVE_API_KEY", DEMO_API_KEY)
    runtime_module._cache.clear()
    yield Store.from_url(os.environ["ATTENTIVE_SYNC_DB_URL"])
    runtime_module._cache.clear()


@pytest.mark.prefect
def test_audience_flows_under_prefect(flow_env, emulator):
    store = flow_env
    counts = FLOWS["audience-backfill"](config=CONFIG, run_key="flow-test", wait_seconds=20)
    assert counts["members_read"] > 0 and counts["jobs_unfinished"] == 0
    assert counts["accepted"] == counts["records_sent"] - counts["rejected"] - counts["retried"]
    customer = store.jobs.items(_any_job(store))[0].customer_id
    now = datetime.now(timezone.utc)
    store.deltas.enqueue([NewDelta("vip", customer, "exit", now)])
    inc = FLOWS["audience-incremental"](config=CONFIG, wait_seconds=10)
    # The exit, and the members the backfill queued behind another audience's job.
    assert inc["leased"] == 1 + counts["held_back"]
    assert inc["accepted"] == inc["records_sent"] and inc["jobs_unfinished"] == 0
    assert store.accepted.for_customers([customer]).get(customer, {})["vip"] is False


@pytest.mark.prefect
def test_a_long_incremental_drain_settles_behind_its_sends_under_prefect(
    flow_env, emulator, monkeypatch
):
    """Leases of 3 deltas and a wait behind the sends after every job: the waits run as
    subflows from the settling thread, and every delta ends accepted and settled."""
    store = flow_env
    monkeypatch.setattr(export_module, "MAX_LEASE", 3)
    monkeypatch.setattr(collaborators_module, "SETTLE_BEHIND_AT_LEAST", 1)
    with store.engine.connect() as conn:
        chosen = list(
            conn.scalars(
                select(customers.c.customer_id)
                .where(customers.c.client_user_id.is_not(None), customers.c.email.is_not(None))
                .order_by(customers.c.customer_id)
                .limit(10)
            )
        )
    now = datetime.now(timezone.utc)
    store.deltas.enqueue([NewDelta("vip", cid, "enter", now) for cid in chosen])
    waits_before = _flow_runs_named("wait-for-bulk-jobs")

    counts = FLOWS["audience-incremental"](config=CONFIG, wait_seconds=10)

    # A customer whose identifiers cannot be sent is quarantined, the rest accepted.
    assert counts["leased"] == 10 == counts["records_sent"] + counts["quarantined"]
    assert counts["accepted"] == counts["records_sent"] >= 8
    assert counts["jobs_unfinished"] == 0
    assert counts["jobs"] == 4, "one job per lease of 3, 3, 3, 1"
    assert counts["jobs_settled"] >= 4
    assert _flow_runs_named("wait-for-bulk-jobs") - waits_before >= 2, "waits behind the sends"
    assert store.deltas.counts().get("done", 0) >= counts["accepted"]
    assert store.jobs.list_unsettled() == []
    ledger = store.accepted.for_customers(chosen)
    assert sum(ledger.get(cid, {}).get("vip") is True for cid in chosen) == counts["accepted"]


def _flow_runs_named(name: str) -> int:
    async def count() -> int:
        async with get_client() as client:
            runs = await client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=[name]))
            )
            return len(runs)

    return asyncio.run(count())


@pytest.mark.prefect
def test_loyalty_events_flow_under_prefect(flow_env, emulator):
    store = flow_env
    from sqlalchemy import select

    from attentive_sync.sources.schema import customers

    with store.engine.connect() as conn:
        customer = conn.execute(
            select(customers.c.customer_id).where(customers.c.email.is_not(None)).limit(1)
        ).scalar_one()
    store.events.enqueue(
        [
            NewEvent(
                "flow-evt-1",
                "referral_complete",
                customer,
                datetime.now(timezone.utc),
                {"referred_customer": "Sam", "points_awarded": 200},
            )
        ]
    )
    from attentive_sync.domain.loyalty.selection import EventSelection
    from attentive_sync.engine.loyalty.relay import EventsConfig

    # A model object as the parameter, as the Prefect UI form and Python callers pass it.
    chosen = EventsConfig(selection=EventSelection(mode="some", keys=["referral_complete"]))
    counts = FLOWS["loyalty-events"](config=CONFIG, events=chosen, wait_seconds=10)
    assert counts["accepted_events"] == 1
    assert emulator.state.list_events("Loyalty Referral Complete")["total"] == 1


@pytest.mark.prefect
def test_loyalty_changes_flow_under_prefect(flow_env, emulator):
    from sqlalchemy import text

    store = flow_env
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE program_settings SET derived_events_enabled = true"))
        customer = conn.execute(
            text(
                "SELECT customer_id FROM customers WHERE email IS NOT NULL"
                " AND client_user_id IS NOT NULL AND tier = 'Bronze' ORDER BY customer_id LIMIT 1"
            )
        ).scalar_one()
        conn.execute(
            text("UPDATE customers SET phone = NULL WHERE customer_id = :c"), {"c": customer}
        )
    baseline = FLOWS["loyalty-changes"](config=CONFIG, wait_seconds=10)
    assert baseline["baseline_customers"] > 0 and emulator.state.list_events()["total"] == 0
    with store.engine.begin() as conn:
        conn.execute(
            text("UPDATE customers SET tier = 'Silver' WHERE customer_id = :c"), {"c": customer}
        )
    counts = FLOWS["loyalty-changes"](config=CONFIG, wait_seconds=10)
    assert counts["derived_tier_upgraded"] == 1 and counts["accepted_events"] == 1
    sent = emulator.state.list_events("Loyalty Tier Upgraded")["events"]
    assert [e["properties"]["new_tier"] for e in sent] == ["Silver"]


def _any_job(store):
    from sqlalchemy import select

    from attentive_sync.store.tables import bulk_jobs

    with store.engine.connect() as conn:
        return conn.execute(select(bulk_jobs.c.job_id).limit(1)).scalar_one()


@pytest.mark.prefect
def test_notice_flows_under_prefect(flow_env, emulator):
    from datetime import timedelta

    from support.program import NOW

    first = FLOWS["reward-reminder"](config=CONFIG, as_of=NOW, wait_seconds=10)
    assert first["to_send"] > 0 and first["claimed"] == first["to_send"]
    again = FLOWS["reward-reminder"](config=CONFIG, as_of=NOW, wait_seconds=10)
    assert again["to_send"] == 0
    day = (NOW + timedelta(days=20)).date()
    expiry = FLOWS["expiry-notice"](config=CONFIG, as_of=day, wait_seconds=10)
    assert expiry["accepted_events"] == expiry["to_send"] > 0


@pytest.mark.prefect
def test_the_api_key_comes_from_a_prefect_secret_block(flow_env, emulator, monkeypatch):
    from prefect.blocks.system import Secret

    from attentive_sync.flows._preflight import load_api_key_from_secret_block

    Secret(value=DEMO_API_KEY).save("attentive-api-key", overwrite=True)
    monkeypatch.delenv("ATTENTIVE_API_KEY")
    load_api_key_from_secret_block()
    assert os.environ["ATTENTIVE_API_KEY"] == DEMO_API_KEY
    counts = FLOWS["audience-incremental"](config=CONFIG, wait_seconds=5)
    assert counts["leased"] == 0


@pytest.mark.prefect
def test_a_run_that_cannot_start_fails_with_one_line_not_a_traceback(
    flow_env, monkeypatch, tmp_path
):
    """It ends in a Failed state carrying the reason (an exception would end it as
    'Flow run encountered an exception', its traceback in the log)."""
    monkeypatch.setenv("ATTENTIVE_SYNC_DB_URL", f"sqlite:///{tmp_path / 'never-initialised.db'}")
    runtime_module._cache.clear()
    state = FLOWS["audience-incremental"](config=CONFIG, return_state=True)
    assert state.is_failed()
    assert state.message == "the state store is not initialised: run `attentive-sync db init`"
