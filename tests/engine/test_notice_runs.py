"""Computed notices delivered end to end: at most one per customer per interval or expiry date."""

from __future__ import annotations

from datetime import timedelta

from support.program import CONFIG, NOW

from attentive_sync.engine.delivery.collaborators import direct_waiter, thread_pool_sender
from attentive_sync.engine.loyalty.relay import EventsConfig, thread_deliverer
from attentive_sync.engine.notices.delivery import run_expiry_notice, run_reward_reminder
from attentive_sync.store.records import NewEvent


def collaborators(runtime):
    return (
        thread_deliverer(runtime, 8),
        thread_pool_sender(runtime, "t", 4),
        direct_waiter(runtime, 10.0),
    )


def test_reward_reminder_twice_for_one_interval_sends_nothing_new(runtime, emulator):
    # An unrelated queued event is the relay's to send, not the reminder's.
    other = NewEvent("other-1", "referral_complete", 999_999, NOW, {"referred_customer": "S"})
    runtime.store.events.enqueue([other])
    first = run_reward_reminder(runtime, CONFIG, EventsConfig(), NOW, collaborators(runtime), "t")
    assert runtime.store.events.counts()["pending"] == 1  # still waiting for the relay
    assert first.problems() == []
    counts = first.counts
    assert counts["to_send"] > 0 and counts["claimed"] == counts["to_send"]
    # every reminder either reached Attentive or was quarantined with a reason
    assert counts["accepted_events"] + counts["quarantined"] == counts["to_send"]
    sent = emulator.state.list_events("Loyalty Reward Reminder")
    assert sent["total"] == counts["accepted_events"]
    sample = sent["events"][0]["properties"]
    assert {
        "points_approved_in_interval",
        "points_interval_start_date",
        "available_rewards",
    } <= set(sample)
    assert counts["accepted"] > 0  # the figures as attributes, through the bulk path

    second = run_reward_reminder(runtime, CONFIG, EventsConfig(), NOW, collaborators(runtime), "t")
    assert second.problems() == []
    assert second.counts["to_send"] == 0
    assert second.counts["already_notified"] == counts["eligible"]
    assert emulator.state.list_events("Loyalty Reward Reminder")["total"] == sent["total"]


def test_expiry_notice_twice_on_one_day_sends_nothing_new(runtime, emulator):
    day = (NOW + timedelta(days=20)).date()  # the seed's oldest activity comes due then
    first = run_expiry_notice(runtime, CONFIG, EventsConfig(), day, collaborators(runtime), "t")
    assert first.problems() == []
    assert first.counts["to_send"] > 0
    assert first.counts["quarantined"] == 0
    events = emulator.state.list_events("Loyalty Points Expiring Soon")
    received = events["total"]
    assert received == first.counts["accepted_events"] == first.counts["to_send"]
    assert events["events"][0]["properties"]["expire_points_at"].endswith("T00:00:00Z")
    second = run_expiry_notice(runtime, CONFIG, EventsConfig(), day, collaborators(runtime), "t")
    assert second.counts["to_send"] == 0 and second.counts["already_noticed"] == first.counts["due"]
    assert emulator.state.list_events("Loyalty Points Expiring Soon")["total"] == received
