"""Turning intake bodies into queue records, with errors a sender can act on.

Pydantic does the validation; this module only decides the accepted shapes and says what
is wrong in one line (field path and reason, never the submitted values, which may be
personal data).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictInt, ValidationError

from attentive_sync.domain.loyalty.catalogue import EVENT_KEYS, WebhookEnvelope
from attentive_sync.intake.bodies import BodyRefused, parse_json_object
from attentive_sync.store.errors import InvalidRecordError
from attentive_sync.store.records import NewDelta, NewEvent

MAX_DELTAS_PER_REQUEST = 1000
_MAX_REPORTED_ERRORS = 5


class PayloadError(ValueError):
    """A body the intake cannot accept; the message is safe to return to the sender."""


class DeltaIn(BaseModel):
    """One audience change as posted to ``/deltas``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    audience: str = Field(min_length=1, max_length=200)
    customer_id: StrictInt = Field(ge=1, le=2**63 - 1)
    action: Literal["enter", "exit"]
    occurred_at: AwareDatetime
    key: str | None = Field(default=None, min_length=1, max_length=200)


class DeltaBatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    deltas: list[DeltaIn] = Field(min_length=1, max_length=MAX_DELTAS_PER_REQUEST)


def summarise(error: ValidationError) -> str:
    """``field.path: reason`` for the first few problems, joined on one line."""
    parts = [
        f"{'.'.join(str(p) for p in item['loc']) or 'body'}: {item['msg']}"
        for item in error.errors(include_input=False)[:_MAX_REPORTED_ERRORS]
    ]
    hidden = error.error_count() - len(parts)
    return "; ".join(parts) + (f" (and {hidden} more)" if hidden > 0 else "")


def _json_object(body: bytes | str) -> dict[str, Any]:
    """Parsed with the intake's limits: depth, number range, no NaN (``bodies``)."""
    try:
        return parse_json_object(body)
    except BodyRefused as exc:
        raise PayloadError(exc.reason) from exc


def _to_delta(item: DeltaIn) -> NewDelta:
    return NewDelta(item.audience, item.customer_id, item.action, item.occurred_at, item.key)


def parse_deltas(body: bytes | str) -> list[NewDelta]:
    """One delta object, or ``{"deltas": [...]}`` with 1 to 1000 of them."""
    value = _json_object(body)
    try:
        if "deltas" in value:
            items = list(DeltaBatchIn.model_validate(value).deltas)
        else:
            items = [DeltaIn.model_validate(value)]
        return [_to_delta(item) for item in items]
    except ValidationError as exc:
        raise PayloadError(f"invalid delta: {summarise(exc)}") from exc
    except InvalidRecordError as exc:
        raise PayloadError(f"invalid delta: {exc}") from exc


def parse_event(body: bytes | str) -> NewEvent:
    """A loyalty-platform webhook envelope (``id``, ``topic``, ``created_at``, ...)."""
    value = _json_object(body)
    topic = value.get("topic")
    if isinstance(topic, str) and topic not in EVENT_KEYS:
        raise PayloadError(
            f"unknown event topic {topic!r}; expected one of: {', '.join(sorted(EVENT_KEYS))}"
        )
    try:
        return NewEvent.from_envelope(WebhookEnvelope.model_validate(value))
    except ValidationError as exc:
        raise PayloadError(f"invalid event: {summarise(exc)}") from exc
    except InvalidRecordError as exc:
        raise PayloadError(f"invalid event: {exc}") from exc
