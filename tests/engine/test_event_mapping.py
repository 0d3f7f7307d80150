"""One queued loyalty event -> Send | NotSelected | Stale | Dropped | Rejected."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from support.contract import errors
from support.loyalty_samples import EXPECTED_PROPERTIES, REWARDS, SAMPLES

from attentive_sync.domain.errors import NO_IDENTIFIER
from attentive_sync.domain.identifiers import Identifiers
from attentive_sync.domain.loyalty.catalogue import EventKey, event_type
from attentive_sync.domain.loyalty.properties import FIRST_TIER_ON_ENROLMENT, NO_SUPPORTED_REWARDS
from attentive_sync.domain.loyalty.selection import EventSelection, StalePolicy
from attentive_sync.engine.loyalty.events import (
    INVALID_PAYLOAD,
    UNKNOWN_TOPIC,
    Dropped,
    EventsConfig,
    NotSelected,
    Rejected,
    Send,
    Stale,
    map_event,
)

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
IDS = Identifiers(phone="+14155552671", email="jane@example.com", shopify_id="981")
ALL_SETTINGS = EventsConfig(selection=EventSelection(include_deprecated=True))


@dataclass(frozen=True)
class QueuedEvent:
    """An event as the queue would hand it over."""

    event_id: str
    topic: str
    customer_id: int
    occurred_at: datetime
    payload: dict


def _queued(
    key: EventKey,
    payload: dict[str, Any] | None = None,
    age: timedelta = timedelta(minutes=5),
    event_id: str = "ll-evt-1",
) -> QueuedEvent:
    body = SAMPLES[key] if payload is None else payload
    return QueuedEvent(event_id, key.value, 42, NOW - age, body)


@pytest.mark.parametrize("key", list(EventKey))
def test_every_key_maps_from_its_sample_payload(key: EventKey) -> None:
    outcome = map_event(_queued(key), IDS, ALL_SETTINGS, NOW)
    assert isinstance(outcome, Send) and not outcome.stale
    wire = outcome.event.to_wire()
    assert wire["type"] == event_type(key)
    assert wire["properties"] == EXPECTED_PROPERTIES.get(key, SAMPLES[key])
    assert wire["externalEventId"] == "ll-evt-1"
    assert wire["occurredAt"] == "2024-05-01T11:55:00.000Z"
    assert wire["user"] == {
        "phone": "+14155552671",
        "email": "jane@example.com",
        "externalIdentifiers": {"customIdentifiers": [{"name": "shopifyId", "value": "981"}]},
    }
    assert errors("v1", "CustomEventsRequest", wire) == []


def test_program_name_prefixes_the_type() -> None:
    outcome = map_event(_queued(EventKey.REWARD_CLAIMED), IDS, EventsConfig(program="Acme"), NOW)
    assert isinstance(outcome, Send)
    assert outcome.event.type == "Acme Reward Claimed"


def test_bad_program_name_fails_at_configuration_time() -> None:
    with pytest.raises(ValueError, match="program name"):
        EventsConfig(program="Acme, Inc.")


def test_all_drops_the_deprecated_tier_changed_with_a_count() -> None:
    outcome = map_event(_queued(EventKey.TIER_CHANGED), IDS, EventsConfig(), NOW)
    assert outcome == NotSelected(EventKey.TIER_CHANGED)


def test_some_sends_only_the_chosen_keys() -> None:
    settings = EventsConfig(selection=EventSelection.parse("some:tier_changed,reward_claimed"))
    outcomes = [map_event(_queued(key), IDS, settings, NOW) for key in EventKey]
    sent = {o.event.type for o in outcomes if isinstance(o, Send)}
    assert sent == {"Loyalty Tier Changed", "Loyalty Reward Claimed"}
    assert Counter(o.label for o in outcomes) == {"sent": 2, "not_selected": 11}


def test_not_selected_wins_over_an_invalid_payload() -> None:
    settings = EventsConfig(selection=EventSelection(mode="some", keys=[EventKey.REWARD_CLAIMED]))
    outcome = map_event(_queued(EventKey.TIER_UPGRADED, {}), IDS, settings, NOW)
    assert outcome == NotSelected(EventKey.TIER_UPGRADED)


def test_stale_event_is_sent_but_flagged_under_policy_send() -> None:
    outcome = map_event(
        _queued(EventKey.REWARD_CLAIMED, age=timedelta(hours=13)), IDS, EventsConfig(), NOW
    )
    assert isinstance(outcome, Send) and outcome.stale and outcome.label == "sent_stale"
    assert outcome.event.to_wire()["occurredAt"] == "2024-04-30T23:00:00.000Z"


def test_stale_event_is_skipped_under_policy_skip() -> None:
    settings = EventsConfig(stale_policy=StalePolicy.SKIP)
    queued = _queued(EventKey.REWARD_CLAIMED, age=timedelta(hours=13))
    assert map_event(queued, IDS, settings, NOW) == Stale(
        EventKey.REWARD_CLAIMED, timedelta(hours=13)
    )
    fresh = _queued(EventKey.REWARD_CLAIMED, age=timedelta(hours=11))
    assert isinstance(map_event(fresh, IDS, settings, NOW), Send)


def test_naive_queue_timestamps_are_read_as_utc() -> None:
    queued = QueuedEvent(
        "e1", "reward_claimed", 42, datetime(2024, 5, 1, 11, 0), SAMPLES[EventKey.REWARD_CLAIMED]
    )
    outcome = map_event(queued, IDS, EventsConfig(), NOW)
    assert isinstance(outcome, Send)
    assert outcome.event.to_wire()["occurredAt"] == "2024-05-01T11:00:00.000Z"


def test_invalid_payload_is_rejected_with_the_fields_named() -> None:
    payload = {"previous_tier": "Silver", "tier_lower_bound": -1}
    outcome = map_event(_queued(EventKey.TIER_UPGRADED, payload), IDS, EventsConfig(), NOW)
    assert isinstance(outcome, Rejected) and outcome.code == INVALID_PAYLOAD
    assert outcome.detail.startswith("tier_upgraded payload: missing new_tier; invalid ")
    assert "tier_lower_bound" in outcome.detail


def test_unknown_topic_is_rejected() -> None:
    queued = QueuedEvent("e1", "points_doubled", 42, NOW, {})
    outcome = map_event(queued, IDS, EventsConfig(), NOW)
    assert isinstance(outcome, Rejected) and outcome.code == UNKNOWN_TOPIC


@pytest.mark.parametrize("ids", [None, Identifiers()])
def test_customer_without_identifiers_is_rejected(ids: Identifiers | None) -> None:
    outcome = map_event(_queued(EventKey.REWARD_CLAIMED), ids, EventsConfig(), NOW)
    assert isinstance(outcome, Rejected) and outcome.code == NO_IDENTIFIER


def test_client_user_id_alone_is_enough() -> None:
    outcome = map_event(
        _queued(EventKey.REWARD_CLAIMED), Identifiers(client_user_id="c-42"), EventsConfig(), NOW
    )
    assert isinstance(outcome, Send)
    assert outcome.event.to_wire()["user"] == {"externalIdentifiers": {"clientUserId": "c-42"}}


def test_bad_event_id_is_rejected_as_an_invalid_event() -> None:
    outcome = map_event(_queued(EventKey.REWARD_CLAIMED, event_id=""), IDS, EventsConfig(), NOW)
    assert isinstance(outcome, Rejected) and outcome.code == "invalid_event"
    assert outcome.detail.startswith("external_event_id: ")


@pytest.mark.parametrize("key", [EventKey.REWARD_AVAILABLE, EventKey.REWARD_REMINDER])
def test_only_unsupported_rewards_trigger_no_event(key: EventKey) -> None:
    payload = SAMPLES[key] | {"available_rewards": REWARDS[2:]}
    assert map_event(_queued(key, payload), IDS, EventsConfig(), NOW) == Dropped(
        key, NO_SUPPORTED_REWARDS
    )


def test_enrolment_into_the_first_tier_sends_no_upgrade() -> None:
    payload = {"new_tier": "Bronze", "tier_lower_bound": 0, "tier_upper_bound": 500}
    outcome = map_event(_queued(EventKey.TIER_UPGRADED, payload), IDS, EventsConfig(), NOW)
    assert outcome == Dropped(EventKey.TIER_UPGRADED, FIRST_TIER_ON_ENROLMENT)


def test_tally_adds_up_to_the_events_read() -> None:
    queued = [
        _queued(EventKey.REWARD_CLAIMED),
        _queued(EventKey.REWARD_CLAIMED, age=timedelta(days=2)),
        _queued(EventKey.TIER_CHANGED),
        _queued(EventKey.TIER_UPGRADED, {}),
        _queued(
            EventKey.REWARD_AVAILABLE, SAMPLES[EventKey.REWARD_AVAILABLE] | {"points_balance": 10}
        ),
    ]
    counts = Counter(map_event(q, IDS, EventsConfig(), NOW).label for q in queued)
    assert counts == {"sent": 1, "sent_stale": 1, "not_selected": 1, "rejected": 1, "dropped": 1}
    assert sum(counts.values()) == len(queued)
