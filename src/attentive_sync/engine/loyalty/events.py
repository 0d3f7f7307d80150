"""Turn one queued loyalty event into what to do with it: send, drop (and why), or reject.

Pure: the caller loads the customer's identifiers and passes ``now``, so every rule here
(selection, staleness, payload contract, identifiers) is testable without a clock or a store.
Every outcome has a ``label``, so a run report's counts add up to the events it read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from attentive_sync.domain.errors import INVALID_EVENT, NO_IDENTIFIER, RecordRejected
from attentive_sync.domain.events import CustomEvent, EventUser
from attentive_sync.domain.identifiers import Identifiers
from attentive_sync.domain.loyalty.catalogue import (
    DEFAULT_PROGRAM,
    EventKey,
    check_program_name,
    event_type,
)
from attentive_sync.domain.loyalty.properties import InvalidPayload, parse_properties
from attentive_sync.domain.loyalty.selection import (
    STALE_AFTER,
    EventSelection,
    StalePolicy,
    is_stale,
)

UNKNOWN_TOPIC = "unknown_topic"
INVALID_PAYLOAD = "invalid_payload"


class EventRecord(Protocol):
    """One relayed or computed event as the queue holds it (a queue row, or a test's)."""

    @property
    def event_id(self) -> str: ...
    @property
    def topic(self) -> str: ...
    @property
    def occurred_at(self) -> datetime: ...
    @property
    def payload(self) -> Mapping[str, Any]: ...


class EventsConfig(BaseModel):
    """What the merchant sends: All or Some events, and what to do with stale ones (the
    loyalty flows' ``events`` parameter). The program name is checked once, here."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    program: str = Field(DEFAULT_PROGRAM, description="Prefix of event type and attribute names.")
    selection: EventSelection = Field(default_factory=EventSelection)
    stale_policy: StalePolicy = Field(StalePolicy.SEND, description="send (default) or skip")
    update_profiles: bool = Field(True, description="Keep tier/points/segment attributes current.")
    concurrency: int = Field(16, ge=1, le=64, description="Event requests in flight at once.")
    max_events_per_run: int = Field(50_000, ge=1)

    @field_validator("program")
    @classmethod
    def _program(cls, name: str) -> str:
        return check_program_name(name)


@dataclass(frozen=True)
class Send:
    """Send ``event``. ``stale`` ones will not trigger journeys: counted and warned about."""

    event: CustomEvent
    stale: bool = False

    @property
    def label(self) -> str:
        return "sent_stale" if self.stale else "sent"


@dataclass(frozen=True)
class NotSelected:
    """The merchant's selection leaves this key out: dropped with a count, not an error."""

    key: EventKey
    label: ClassVar[str] = "not_selected"


@dataclass(frozen=True)
class Stale:
    """Too old to trigger a journey, and the policy is to skip such events."""

    key: EventKey
    age: timedelta
    label: ClassVar[str] = "stale_skipped"


@dataclass(frozen=True)
class Dropped:
    """The contract says this event triggers nothing (e.g. only unsupported rewards)."""

    key: EventKey
    reason: str
    label: ClassVar[str] = "dropped"


@dataclass(frozen=True)
class Rejected:
    """Can never be sent as it is: goes to the quarantine with a reason code."""

    code: str
    detail: str
    label: ClassVar[str] = "rejected"


Outcome = Send | NotSelected | Stale | Dropped | Rejected


def _aware(moment: datetime) -> datetime:
    # Queue timestamps are written in UTC; SQLite hands them back without an offset.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


def _event_errors(exc: ValidationError) -> str:
    errors = exc.errors(include_input=False, include_url=False)
    return "; ".join(
        f"{'.'.join(str(part) for part in e['loc']) or 'event'}: "
        f"{e['msg'].removeprefix('Value error, ')}"
        for e in errors
    )


def _user(identifiers: Identifiers | None) -> EventUser | Rejected:
    if identifiers is None:
        return Rejected(NO_IDENTIFIER, "customer has no identifiers on record")
    try:
        return EventUser.from_identifiers(identifiers)
    except RecordRejected as exc:
        return Rejected(exc.code, exc.detail)


def map_event(
    queued: EventRecord,
    identifiers: Identifiers | None,
    settings: EventsConfig,
    now: datetime,
) -> Outcome:
    """Decide what happens to one queued event; never raises for bad data."""
    try:
        key = EventKey(queued.topic)
    except ValueError:
        return Rejected(UNKNOWN_TOPIC, f"topic {queued.topic!r} is not a loyalty event key")
    if not settings.selection.selects(key):
        return NotSelected(key)
    occurred_at = _aware(queued.occurred_at)
    stale = is_stale(occurred_at, now, STALE_AFTER)
    if stale and settings.stale_policy is StalePolicy.SKIP:
        return Stale(key, now - occurred_at)
    try:
        properties = parse_properties(key, queued.payload)
    except InvalidPayload as exc:
        return Rejected(INVALID_PAYLOAD, str(exc))
    reason = properties.skip_reason()
    if reason is not None:
        return Dropped(key, reason)
    user = _user(identifiers)
    if isinstance(user, Rejected):
        return user
    try:
        event = CustomEvent(
            type=event_type(key, settings.program),
            user=user,
            properties=properties.to_properties(),
            external_event_id=queued.event_id,
            occurred_at=occurred_at,
        )
    except ValidationError as exc:
        return Rejected(INVALID_EVENT, _event_errors(exc))
    return Send(event, stale=stale)
