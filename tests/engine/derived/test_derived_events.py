"""Loyalty events derived from the program's tables alone: no webhook, no enqueue.

Each scenario changes the tables with SQL, runs derive + relay, and checks what the
emulator received and what the store holds, on SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select
from support.program import CONFIG

from attentive_sync.domain.loyalty.selection import EventSelection
from attentive_sync.engine.checks import ConfigurationError
from attentive_sync.engine.derived import derive, run, snapshot
from attentive_sync.engine.loyalty.relay import EventsConfig
from attentive_sync.store.tables import derived_progress, derived_state, loyalty_events

from .program_sql import (
    add_ledger,
    add_referral,
    balance,
    derive_and_relay,
    enable,
    execute,
    reachable,
    scalar,
)

ROLES = "upgrade downgrade loyal at_risk win_back reward approaching activity claim referrer"


def set_state(engine, cid: int, tier: str, segment: str, points: int) -> None:
    execute(
        engine,
        "UPDATE customers SET tier = :t, insights_segment = :s WHERE customer_id = :c",
        t=tier,
        s=segment,
        c=cid,
    )
    if points != balance(engine, cid):
        add_ledger(engine, cid, points - balance(engine, cid))


def events_of(emulator, name: str) -> dict[str, dict]:
    """What the emulator holds of one event type, by externalEventId."""
    found = emulator.state.list_events(f"Loyalty {name}")["events"]
    return {e["externalEventId"]: e for e in found}


def one_for(emulator, name: str, cid: int) -> dict:
    matching = [e for key, e in events_of(emulator, name).items() if f":{cid}:" in key + ":"]
    assert len(matching) == 1, (name, cid, list(events_of(emulator, name)))
    return matching[0]


def store_rows(runtime, prefix: str = "derived:") -> dict[str, str]:
    t = loyalty_events
    with runtime.store.engine.connect() as conn:
        rows = conn.execute(select(t.c.event_id, t.c.state).where(t.c.event_id.like(f"{prefix}%")))
        return dict(rows.all())


def generation(runtime) -> int | None:
    with runtime.store.engine.connect() as conn:
        return conn.execute(select(derived_progress.c.generation)).scalar()


@pytest.fixture
def program(any_runtime):
    """The ten customers of the scenario in a known state, derived events on."""
    engine = any_runtime.source
    who = dict(zip(ROLES.split(), reachable(engine, 10), strict=True))
    start = {
        "upgrade": ("Silver", "active", 0),
        "downgrade": ("Silver", "active", 0),
        "loyal": ("Bronze", "active", 0),
        "at_risk": ("Bronze", "active", 0),
        "win_back": ("Bronze", "new", 0),
        "reward": ("Gold", "active", 0),
        "approaching": ("Bronze", "active", 0),
        "activity": ("Gold", "active", 0),
        "claim": ("Gold", "active", 1000),
        "referrer": ("Gold", "active", 0),
    }
    for role, (tier, segment, points) in start.items():
        set_state(engine, who[role], tier, segment, points)
    enable(engine, approaching=100)
    return who


def make_changes(engine, who: dict[str, int]) -> None:
    execute(engine, "UPDATE customers SET tier = 'Gold' WHERE customer_id = :c", c=who["upgrade"])
    execute(
        engine, "UPDATE customers SET tier = 'Bronze' WHERE customer_id = :c", c=who["downgrade"]
    )
    for role in ("loyal", "at_risk", "win_back"):
        execute(
            engine,
            "UPDATE customers SET insights_segment = :s WHERE customer_id = :c",
            s=role,
            c=who[role],
        )
    add_ledger(engine, who["reward"], 120)
    add_ledger(engine, who["approaching"], 450)
    add_ledger(engine, who["activity"], 50, rule_name="Follow us on Instagram")
    add_ledger(engine, who["claim"], -250, reward_id=2, voucher_code="SAVE15-XYZ")
    add_referral(engine, 1, who["referrer"], referred_name="Sam")


def test_each_derived_type_arrives_once_and_a_second_run_sends_nothing(
    any_runtime, emulator, program
):
    runtime, who, engine = any_runtime, program, any_runtime.source
    first = derive_and_relay(runtime, CONFIG)
    assert first.problems() == [] and first.notes == [
        "first run: recorded the baseline, sent nothing"
    ]
    assert first.counts["baseline_customers"] == scalar(engine, "SELECT COUNT(*) FROM customers")
    assert emulator.state.list_events()["total"] == 0 and generation(runtime) == 1

    make_changes(engine, who)
    report = derive_and_relay(runtime, CONFIG)
    assert report.problems() == []
    assert (
        report.counts["derived_not_selected"] == 2
    )  # tier_changed is deprecated: off unless chosen

    up = one_for(emulator, "Tier Upgraded", who["upgrade"])["properties"]
    assert up == {
        "previous_tier": "Silver",
        "new_tier": "Gold",
        "tier_lower_bound": 1500,
    }
    down = one_for(emulator, "Tier Downgraded", who["downgrade"])["properties"]
    assert down == {
        "previous_tier": "Silver",
        "new_tier": "Bronze",
        "tier_lower_bound": 0,
        "tier_upper_bound": 499,
    }
    for role, name, segment, before in (
        ("loyal", "Moved To Loyal", "Loyal", "Active"),
        ("at_risk", "Moved To At Risk", "At Risk", "Active"),
        ("win_back", "Moved To Win Back", "Win Back", "New"),
    ):
        properties = one_for(emulator, name, who[role])["properties"]
        assert properties == {"previous_segment": before, "new_segment": segment}
    reward = one_for(emulator, "Reward Available", who["reward"])["properties"]
    assert reward["points_balance"] == 120
    assert [r["cost_points"] for r in reward["available_rewards"]] == [100]
    assert reward["available_rewards_count"] == 1 and reward["cheapest_reward_cost"] == 100
    near = one_for(emulator, "Approaching Tier", who["approaching"])["properties"]
    assert near == {"current_tier": "Bronze", "next_tier": "Silver", "points_required": 50}
    assert one_for(emulator, "Reward Available", who["approaching"])  # it crossed 100..250
    activity = list(events_of(emulator, "Activity Completed").values())
    assert [e["properties"] for e in activity] == [
        {"rule_name": "Follow us on Instagram", "points_awarded": 50}
    ]
    claimed = list(events_of(emulator, "Reward Claimed").values())
    assert [e["properties"] for e in claimed] == [
        {
            "reward_title": "$15 off your next order",
            "reward_type": "discount_voucher",
            "points_spent": 250,
            "voucher_code": "SAVE15-XYZ",
        }
    ]
    referral = events_of(emulator, "Referral Complete")
    assert [e["properties"] for e in referral.values()] == [
        {"referred_customer": "Sam", "points_awarded": 250}
    ]
    assert list(referral) == ["derived:referral_complete:referral:1"]
    total = emulator.state.list_events()["total"]
    assert total == 11 == report.counts["accepted_events"] == report.counts["queued"]
    assert set(store_rows(runtime).values()) == {"done"} and len(store_rows(runtime)) == 11
    with runtime.store.engine.connect() as conn:
        snap = conn.execute(
            select(derived_state).where(derived_state.c.customer_id == who["upgrade"])
        ).one()
    assert snap.tier == "Gold" and generation(runtime) == 2

    gone = who["claim"]  # a customer who leaves the program leaves the snapshot too
    execute(engine, "DELETE FROM audience_members WHERE customer_id = :c", c=gone)
    execute(engine, "DELETE FROM customers WHERE customer_id = :c", c=gone)
    again = derive_and_relay(runtime, CONFIG)
    assert again.problems() == []
    assert again.counts["derived"] == 0 and again.counts["changed_customers"] == 0
    assert scalar(engine, "SELECT COUNT(*) FROM derived_state WHERE customer_id = :c", c=gone) == 0
    assert emulator.state.list_events()["total"] == total
    assert emulator.state.list_events()["duplicates"] == 0


def test_a_cooldown_suppresses_a_repeat_within_seven_days(any_runtime, emulator, program):
    runtime, who, engine = any_runtime, program, any_runtime.source
    derive_and_relay(runtime, CONFIG)  # baseline
    add_ledger(engine, who["reward"], 120)
    add_ledger(engine, who["approaching"], 450)
    derive_and_relay(runtime, CONFIG)
    assert len(events_of(emulator, "Reward Available")) == 2
    assert len(events_of(emulator, "Approaching Tier")) == 1

    add_ledger(engine, who["reward"], -120)  # below every reward again ...
    add_ledger(engine, who["approaching"], -450)
    derive_and_relay(runtime, CONFIG)
    add_ledger(engine, who["reward"], 120)  # ... and past one again, two days later
    add_ledger(engine, who["approaching"], 450)
    soon = datetime.now(timezone.utc) + timedelta(days=2)
    repeat = derive_and_relay(runtime, CONFIG, now=soon)
    assert repeat.problems() == []
    assert repeat.counts["cooldown_suppressed"] == 3  # reward x2, approaching x1
    assert repeat.counts["derived"] == 0
    assert len(events_of(emulator, "Reward Available")) == 2
    assert len(events_of(emulator, "Approaching Tier")) == 1
    assert (
        scalar(
            engine,
            "SELECT points_balance FROM derived_state WHERE customer_id = :c",
            c=who["reward"],
        )
        == 120
    )  # the snapshot moved all the same

    add_ledger(engine, who["reward"], -120)
    derive_and_relay(runtime, CONFIG, now=soon)
    add_ledger(engine, who["reward"], 120)
    later = datetime.now(timezone.utc) + timedelta(days=8)
    after = derive_and_relay(runtime, CONFIG, now=later)
    assert after.counts["derived_reward_available"] == 1
    assert len(events_of(emulator, "Reward Available")) == 3


def test_off_by_default_records_and_sends_nothing(any_runtime, emulator):
    engine = any_runtime.source
    cid = reachable(engine, 1)[0]
    execute(engine, "UPDATE customers SET insights_segment = 'loyal' WHERE customer_id = :c", c=cid)
    report = derive_and_relay(any_runtime, CONFIG)
    assert report.problems() == []
    assert any("derived_events_enabled" in note for note in report.notes)
    assert generation(any_runtime) is None
    assert scalar(engine, "SELECT COUNT(*) FROM derived_state") == 0
    assert emulator.state.list_events()["total"] == 0


def test_the_switch_sends_the_current_state_on_a_first_run(any_runtime, emulator):
    engine = any_runtime.source
    cid = reachable(engine, 1)[0]
    execute(
        engine, "UPDATE customers SET insights_segment = 'win_back' WHERE customer_id = :c", c=cid
    )
    enable(engine, approaching=None)
    keys = ["moved_to_win_back", "reward_available"]
    only = EventsConfig(selection=EventSelection(mode="some", keys=keys))
    report = derive_and_relay(any_runtime, CONFIG, only, send_current_state=True)
    assert report.problems() == []
    expected = scalar(engine, "SELECT COUNT(*) FROM customers WHERE insights_segment = 'win_back'")
    assert report.counts["derived_moved_to_win_back"] == expected
    sent = one_for(emulator, "Moved To Win Back", cid)["properties"]
    assert sent == {"new_segment": "Win Back"}  # no previous segment on a first run
    rewarded = report.counts["derived_reward_available"]
    assert rewarded > 0 and report.counts["queued"] == expected + rewarded
    cooling = "SELECT COUNT(*) FROM derived_state WHERE reward_available_at IS NOT NULL"
    assert scalar(engine, cooling) == rewarded
    assert scalar(engine, "SELECT COUNT(*) FROM derived_state") == scalar(
        engine, "SELECT COUNT(*) FROM customers"
    )
    again = derive_and_relay(any_runtime, CONFIG, only, send_current_state=True)
    assert again.counts["derived"] == 0  # the switch acts on a first run only


def test_tier_changed_is_sent_when_selected(any_runtime, emulator, program):
    runtime, who, engine = any_runtime, program, any_runtime.source
    derive_and_relay(runtime, CONFIG)
    execute(engine, "UPDATE customers SET tier = 'Gold' WHERE customer_id = :c", c=who["upgrade"])
    chosen = EventsConfig(selection=EventSelection(include_deprecated=True))
    report = derive_and_relay(runtime, CONFIG, chosen)
    assert report.problems() == []
    changed = one_for(emulator, "Tier Changed", who["upgrade"])["properties"]
    assert changed == {"previous_tier": "Silver", "new_tier": "Gold"}
    assert one_for(emulator, "Tier Upgraded", who["upgrade"])
    assert emulator.state.list_events()["total"] == 2


def test_rows_that_can_never_be_sent_are_quarantined_and_the_rest_go_on(
    any_runtime, emulator, program
):
    runtime, who, engine = any_runtime, program, any_runtime.source
    derive_and_relay(runtime, CONFIG)
    add_ledger(engine, who["claim"], -10, reward_id=999)  # no such reward: no title
    add_referral(engine, 7, 987_654_321)  # the referrer is no program customer
    add_ledger(engine, who["activity"], 5, rule_name="Birthday")
    report = derive_and_relay(runtime, CONFIG)
    assert report.problems() == []
    assert report.counts["quarantined"] == 2 and report.counts["accepted_events"] == 1
    assert len(events_of(emulator, "Activity Completed")) == 1
    assert events_of(emulator, "Reward Claimed") == {}
    reasons = {e.source_ref: e.reason_code for e in runtime.store.quarantine.list()}
    rows = store_rows(runtime)
    claimed = next(k for k in rows if k.startswith("derived:reward_claimed:"))
    assert rows[claimed] == "quarantined"
    assert rows["derived:referral_complete:referral:7"] == "quarantined"
    assert sorted(reasons.values()) == ["invalid_payload", "no_identifier"]


def test_a_failed_commit_stores_nothing_and_the_next_run_sends_once(
    any_runtime, emulator, program, monkeypatch
):
    runtime, who, engine = any_runtime, program, any_runtime.source
    derive_and_relay(runtime, CONFIG)
    make_changes(engine, who)

    def broken(*args):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(snapshot, "move", broken)
    with pytest.raises(RuntimeError):
        derive(runtime, EventsConfig(), "crashing")
    assert store_rows(runtime) == {} and generation(runtime) == 1
    monkeypatch.undo()
    report = derive_and_relay(runtime, CONFIG)
    assert report.counts["queued"] == 11 == emulator.state.list_events()["total"]


def test_two_runs_from_one_snapshot_commit_once(any_runtime, emulator, program, monkeypatch):
    runtime, who, engine = any_runtime, program, any_runtime.source
    derive_and_relay(runtime, CONFIG)
    make_changes(engine, who)
    real = run._derive

    def overtaken(*args, **kwargs):
        found = real(*args, **kwargs)
        monkeypatch.setattr(run, "_derive", real)
        derive(runtime, EventsConfig(), "the-other-run")  # commits first
        return found

    monkeypatch.setattr(run, "_derive", overtaken)
    late = derive(runtime, EventsConfig(), "late")
    assert any("moved the snapshot first" in note for note in late.notes)
    assert late.counts["queued"] == 0 and generation(runtime) == 2
    assert len(store_rows(runtime)) == 11


def test_a_source_in_another_database_is_refused(any_runtime, tmp_path):
    enable(any_runtime.source)
    any_runtime.sync = any_runtime.sync.model_copy(
        update={"source_url": f"sqlite:///{tmp_path / 'elsewhere.db'}"}
    )
    with pytest.raises(ConfigurationError, match="state store's database"):
        derive(any_runtime, EventsConfig(), "t")


def test_a_source_without_the_derived_columns_is_refused_by_name(any_runtime):
    enable(any_runtime.source)
    execute(any_runtime.source, "ALTER TABLE referrals RENAME TO old_referrals")
    with pytest.raises(ConfigurationError, match="derived loyalty events read referrals"):
        derive(any_runtime, EventsConfig(), "t")


def test_events_of_a_run_that_died_before_relaying_are_sent_once_by_the_next(
    any_runtime, emulator, program
):
    runtime, who, engine = any_runtime, program, any_runtime.source
    derive_and_relay(runtime, CONFIG)
    make_changes(engine, who)
    # The dead run's lease ran out an hour ago: its queued events are anyone's to send.
    hour_ago = datetime.now(timezone.utc) - timedelta(hours=1)
    dead = derive(runtime, EventsConfig(), "died-after-commit", now=hour_ago)
    assert dead.counts["queued"] == 11 and emulator.state.list_events()["total"] == 0
    report = derive_and_relay(runtime, CONFIG)
    assert report.problems() == []
    assert report.counts["derived"] == 0 and report.counts["accepted_events"] == 11
    assert emulator.state.list_events()["total"] == 11
    assert set(store_rows(runtime).values()) == {"done"}
