"""The audience export end to end through the engine (no Prefect) against the emulator."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select
from support.program import CONFIG

from attentive_sync.engine.audience.export import run_backfill, run_incremental
from attentive_sync.engine.checks import ConfigurationError
from attentive_sync.engine.delivery.collaborators import direct_waiter, thread_pool_sender
from attentive_sync.engine.mapping import identifiers_for
from attentive_sync.sources.loyalty import load_customers
from attentive_sync.sources.schema import audience_members
from attentive_sync.store.records import NewDelta


def members(runtime, audiences):
    stmt = select(audience_members.c.audience_slug, audience_members.c.customer_id).where(
        audience_members.c.audience_slug.in_(audiences)
    )
    with runtime.source.connect() as conn:
        return [tuple(r) for r in conn.execute(stmt)]


def customers_in(runtime, audiences) -> dict[int, set[str]]:
    """Each customer of ``audiences`` with the ones of them they are in."""
    found: dict[int, set[str]] = {}
    for audience, cid in members(runtime, audiences):
        found.setdefault(cid, set()).add(audience)
    return found


def emulator_value(emulator, runtime, customer_id, name):
    """The attribute as the emulator holds it, found through any of the customer's identifiers."""
    (row,) = load_customers(runtime.source, [customer_id])
    wire = identifiers_for(CONFIG, row).to_wire()
    for kind in ("clientUserId", "email", "phone"):
        if kind in wire:
            user = emulator.state.find_user(**{kind: wire[kind]})
            if user is not None:
                return user["attributes"].get("custom", {}).get(name)
    return None


def backfill(runtime, run_key="t1", config=CONFIG, send=None):
    return run_backfill(
        runtime,
        config,
        run_key,
        send or thread_pool_sender(runtime, run_key, 4),
        direct_waiter(runtime, 10.0),
    )


def test_backfill_accepts_every_valid_member_and_counts_add_up(any_runtime, emulator):
    runtime = any_runtime
    report = backfill(runtime)
    counts = report.counts
    assert report.problems() == []
    # One record per customer, however many of the audiences hold them.
    assert counts["members_read"] == len(customers_in(runtime, CONFIG.audiences))
    assert counts["jobs_unfinished"] == 0
    assert counts["accepted"] + counts["rejected"] + counts["retried"] == counts["records_sent"]
    assert counts["quarantined"] > 0, "the seed has customers that can never be sent"
    reasons = runtime.store.quarantine.summary()
    assert set(reasons) <= {"invalid_phone", "no_identifier", "invalid_identifier"}
    ledger = runtime.store.accepted
    held = ledger.for_customers(c for _, c in members(runtime, ["vip"]))
    accepted = [(a, c) for a, c in members(runtime, ["vip"]) if held.get(c, {}).get("vip")]
    assert accepted
    for _, cid in accepted[:40]:
        assert emulator_value(emulator, runtime, cid, "vip") is True


def test_backfill_killed_mid_run_resumes_without_resending(runtime, emulator):
    sent_batches = []
    real = thread_pool_sender(runtime, "crash", 1)

    def crashing(batches, kind):
        if len(sent_batches) >= 1:
            raise KeyboardInterrupt("killed")
        sent_batches.append(batches[0])
        real(batches[:1], kind)
        raise KeyboardInterrupt("killed after the first batch")

    with pytest.raises(KeyboardInterrupt):
        backfill(runtime, "resume", send=crashing)
    second = backfill(runtime, "resume")
    # Records whose customer an unsettled job carries wait as enter deltas.
    deferred = second.counts["held_back"]
    assert runtime.store.deltas.counts()["pending"] == deferred
    fresh_total = second.counts["records_sent"] + deferred + len(sent_batches[0].users)
    assert second.counts["skipped_already_sent"] == len(sent_batches[0].users)
    assert second.problems() == []
    # exactly as if it had never stopped: every valid member sent once
    parked = sum(runtime.store.quarantine.summary().values())
    assert parked == second.counts["quarantined"] + second.counts["skipped_already_quarantined"]
    valid = len(customers_in(runtime, CONFIG.audiences)) - parked
    assert fresh_total == valid
    for item in sent_batches[0].items[:10]:
        held = runtime.store.accepted.for_customers([item.customer_id]).get(item.customer_id)
        assert held == dict.fromkeys(item.attributes, True)


def test_a_customer_in_several_audiences_is_one_record_with_every_flag(any_runtime, emulator):
    runtime = any_runtime
    audiences = customers_in(runtime, CONFIG.audiences)
    several = sorted(cid for cid, of in audiences.items() if len(of) > 1)
    assert several, "the seed has customers in more than one exported audience"
    report = backfill(runtime)
    assert report.problems() == []
    # Attentive got one user record per customer: fewer than one per membership.
    submitted = sum(job["totalRecords"] for job in emulator.state.list_jobs())
    assert submitted == report.counts["records_sent"] < len(members(runtime, CONFIG.audiences))
    ledger = runtime.store.accepted.for_customers(several)
    both = [cid for cid in several if set(ledger.get(cid, {})) >= audiences[cid]]
    assert len(both) > len(several) // 2  # the rest cannot be sent (quarantined)
    for cid in both[:20]:
        ref = f"t1|{','.join(sorted(audiences[cid]))}|{cid}"
        one_each = [f"t1|{audience}|{cid}" for audience in audiences[cid]]
        assert runtime.store.jobs.carried("backfill", [ref, *one_each]) == {ref}
        assert all(ledger[cid][name] is True for name in audiences[cid])
    for cid in both[:10]:
        values = [emulator_value(emulator, runtime, cid, name) for name in audiences[cid]]
        if values != [None] * len(values):  # found through an identifier the test can use
            assert values == [True] * len(values)


def test_backfill_can_be_turned_off(runtime):
    report = backfill(runtime, config=CONFIG.model_copy(update={"existing_users": False}))
    assert report.counts["members_read"] == 0 and "existing_users is off" in report.notes[0]


@pytest.mark.parametrize(
    ("update", "named"),
    [({"custom_attributes": ["shoe_size"]}, "shoe_size"), ({"audiences": ["vipp"]}, "vipp")],
)
def test_configuration_that_does_not_fit_the_source_is_a_clear_error(runtime, update, named):
    config = CONFIG.model_copy(update=update)
    with pytest.raises(ConfigurationError, match=named):
        backfill(runtime, config=config)
    with pytest.raises(ConfigurationError, match=named):
        incremental_with(runtime, config)


def sendable_customer(runtime):
    """A customer with a client user id (so the emulator can be asked about them)."""
    with runtime.source.connect() as conn:
        from attentive_sync.sources.schema import customers

        row = conn.execute(
            select(customers.c.customer_id)
            .where(customers.c.client_user_id.is_not(None), customers.c.email.is_not(None))
            .order_by(customers.c.customer_id)
            .limit(1)
        ).first()
    return row[0]


def enqueue(runtime, cid, action, at):
    runtime.store.deltas.enqueue([NewDelta("vip", cid, action, at)])


def incremental_with(runtime, config, wait=0.2):
    return run_incremental(
        runtime,
        config,
        "test",
        thread_pool_sender(runtime, "test", 2),
        direct_waiter(runtime, wait),
    )


def incremental(runtime, wait=0.2):
    return run_incremental(
        runtime,
        CONFIG,
        "test",
        thread_pool_sender(runtime, "test", 2),
        direct_waiter(runtime, wait),
    )


def test_enter_exit_enter_across_three_runs_with_slow_jobs_ends_true(any_runtime, emulator):
    runtime = any_runtime
    emulator.state.change_faults({"slow_job_rate": 1.0, "slow_job_delay": 1.0})
    cid, t0 = sendable_customer(runtime), datetime.now(timezone.utc)
    enqueue(runtime, cid, "enter", t0)
    first = incremental(runtime)
    assert first.counts["records_sent"] == 1 and first.counts["jobs_unfinished"] == 1
    enqueue(runtime, cid, "exit", t0 + timedelta(seconds=1))
    second = incremental(runtime)
    assert second.counts["leased"] == 0, "the exit waits for the job carrying the enter"
    enqueue(runtime, cid, "enter", t0 + timedelta(seconds=2))
    time.sleep(1.0)
    emulator.state.change_faults({"slow_job_rate": 0.0})
    third = incremental(runtime, wait=5.0)
    assert third.counts["coalesced"] == 1 and third.counts["records_sent"] == 1
    assert third.problems() == []
    assert emulator_value(emulator, runtime, cid, "vip") is True
    assert runtime.store.deltas.counts()["done"] == 3


def test_exit_after_a_slow_enter_is_not_overtaken(runtime, emulator):
    """Without per-customer order the slow enter would land after the exit and win."""
    emulator.state.change_faults({"slow_job_rate": 1.0, "slow_job_delay": 0.8})
    cid, t0 = sendable_customer(runtime), datetime.now(timezone.utc)
    enqueue(runtime, cid, "enter", t0)
    incremental(runtime, wait=0.1)
    enqueue(runtime, cid, "exit", t0 + timedelta(seconds=1))
    emulator.state.change_faults({"slow_job_rate": 0.0})
    for _ in range(20):
        report = incremental(runtime, wait=2.0)
        if runtime.store.deltas.counts()["done"] == 2:
            break
    assert report.problems() == []
    assert emulator_value(emulator, runtime, cid, "vip") is False


def test_unsendable_delta_quarantined_and_the_rest_go_on(runtime, emulator):
    with runtime.source.connect() as conn:
        from attentive_sync.sources.schema import customers

        bad = conn.execute(
            select(customers.c.customer_id).where(customers.c.phone == "5551234")
        ).first()
    assert bad is not None, "the seed includes the never-valid phone 5551234"
    good, now = sendable_customer(runtime), datetime.now(timezone.utc)
    enqueue(runtime, bad[0], "enter", now)
    enqueue(runtime, good, "enter", now)
    report = incremental(runtime, wait=5.0)
    assert report.counts["quarantined"] >= 1 and report.counts["accepted"] >= 1
    assert report.problems() == []
    assert emulator_value(emulator, runtime, good, "vip") is True


def test_resume_checks_run_only_on_pages_an_earlier_run_reached(runtime, emulator):
    from attentive_sync.engine import stages
    from attentive_sync.engine.audience.backfill import MEMBER, BackfillPlanner, walk_key

    stages.reset()
    fresh = backfill(runtime, "horizon")
    assert fresh.problems() == []
    assert "resume checks" not in stages.snapshot()  # a new run key: nothing to check

    store = runtime.store
    prefix = "horizon|"
    reached = max(
        store.jobs.last_member_carried("horizon"),
        store.quarantine.last_customer_parked(MEMBER.source_kind, prefix),
    )
    ids = sorted(customers_in(runtime, CONFIG.audiences))
    assert reached == ids[-1]
    # The same key again from before its checkpoint: every page up to the last customer it
    # reached is checked, and each record is skipped as sent or parked, never sent twice.
    store.checkpoints.set("horizon", walk_key(CONFIG.audiences), 0, 0)
    planner = BackfillPlanner(runtime, CONFIG, "horizon", page_size=50)
    pages = list(planner.pages())
    assert len(pages) > 1
    assert sum(p.skipped + p.skipped_quarantined for p in pages) == len(ids)
    assert all(not p.batches for p in pages)
    assert stages.snapshot()["resume checks"][1] == len(pages)
