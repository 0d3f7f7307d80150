"""LoyaltyLion's webhook deliveries, as they are sent, turned into the project's events.

Signature: ``x-loyaltylion-hmac-sha256`` is the base64 HMAC-SHA256 of the raw body, keyed
with the site secret (or the OAuth client secret for apps). It covers no timestamp, so a
replayed delivery verifies; the envelope ``id`` makes a replay a duplicate of the first.

Envelope: ``{id, topic, created_at, payload}``; ``created_at`` is when the webhook was
sent, not when the event happened, so the event time is taken from the payload (the
wrapper's ``created_at``, else the activity's or transaction's), and the send time only
when the payload has none. The payload comes in three wrappers, all read the same way:
``payload.{id, created_at, kind, unique_until, properties}``, ``payload.properties`` and a
flat ``payload``. ``customers/update`` carries the customer at the top of the envelope.

Units: tier bounds are decimal strings divided by 100 (``"200.01"`` is 20,001 points for
a points-based tier; for a spend-based tier x100 gives currency subunits); reward costs are
``point_cost``; points may arrive as numbers or integer strings; booleans are never numbers.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from datetime import date, datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, cast

from pydantic import AwareDatetime, SecretStr, TypeAdapter, ValidationError

from attentive_sync.domain.loyalty.catalogue import EventKey
from attentive_sync.intake.platform import (
    Acknowledged,
    DeliveryInvalid,
    PlatformCustomer,
    Translated,
)
from attentive_sync.intake.signing import SignatureRejected

SIGNATURE_HEADER = "x-loyaltylion-hmac-sha256"
TOPIC_PREFIX = "program_events/"
PROFILE_TOPIC = "customers/update"

_TIME = TypeAdapter(AwareDatetime)
_INTEGER_TEXT = re.compile(r"-?\d{1,18}(\.0+)?")

Properties = dict[str, Any]
Reader = Callable[[Mapping[str, Any], Mapping[str, Any]], Properties]


def signature(secret: SecretStr | str, body: bytes) -> str:
    """The header value LoyaltyLion puts on ``body``."""
    key = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
    return base64.b64encode(hmac.new(key.encode(), body, hashlib.sha256).digest()).decode()


# ---- field readers: LoyaltyLion's names and units, refused with the path, never the value


def _object(parent: Mapping[str, Any], name: str, where: str) -> Mapping[str, Any]:
    value = parent.get(name)
    if not isinstance(value, Mapping):
        raise DeliveryInvalid(f"{where}.{name} must be an object")
    return value


def _optional_object(parent: Mapping[str, Any], name: str, where: str) -> Mapping[str, Any]:
    value = parent.get(name)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise DeliveryInvalid(f"{where}.{name} must be an object or null")
    return value


def _text(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise DeliveryInvalid(f"{where} must be text")
    return value.strip() or None


def _integer(value: Any, where: str) -> int | None:
    """A whole number sent as a number or as integer text (LoyaltyLion does both)."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise DeliveryInvalid(f"{where} must be a number, not a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _INTEGER_TEXT.fullmatch(value.strip()):
        return int(Decimal(value.strip()))
    raise DeliveryInvalid(f"{where} must be a whole number")


def _hundredths(value: Any, where: str) -> int | None:
    """A tier bound: decimal text (or a number) times 100, exactly."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise DeliveryInvalid(f"{where} must be a decimal string")
    try:
        scaled = Decimal(str(value).strip()) * 100
    except InvalidOperation as exc:
        raise DeliveryInvalid(f"{where} must be a decimal string") from exc
    if not scaled.is_finite() or scaled != scaled.to_integral_value():
        raise DeliveryInvalid(f"{where} must have at most two decimal places")
    return int(scaled)


def _number(value: Any, where: str) -> int | float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise DeliveryInvalid(f"{where} must be a number")
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation as exc:
        raise DeliveryInvalid(f"{where} must be a number") from exc
    if not number.is_finite():
        raise DeliveryInvalid(f"{where} must be a finite number")
    return int(number) if number == number.to_integral_value() else float(number)


def _time(value: Any, where: str) -> datetime | None:
    if value is None:
        return None
    try:
        return _TIME.validate_python(value).astimezone(timezone.utc)
    except ValidationError as exc:
        raise DeliveryInvalid(f"{where} must be an ISO 8601 time with a zone") from exc


def _day(value: Any, where: str) -> date | None:
    moment = _time(value, where)
    return moment.date() if moment else None


def _tier_name(parent: Mapping[str, Any], name: str, where: str) -> str | None:
    return _text(_optional_object(parent, name, where).get("name"), f"{where}.{name}.name")


_SEGMENTS = {"loyal": "Loyal", "at risk": "At Risk", "defected": "Win Back", "win back": "Win Back"}


def _segment(value: Any, where: str) -> str | None:
    """LoyaltyLion's insights segment in the project's words: Defected is Win Back."""
    text = _text(value, where)
    if text is None:
        return None
    words = " ".join(text.replace("-", " ").replace("_", " ").casefold().split())
    return _SEGMENTS.get(words, text)


def profile_of(person: Mapping[str, Any]) -> dict[str, Any]:
    """The profile values ``customers/update`` carries: tier name, points balance, segment
    (keys as ``profile_attributes`` takes them; absent values are left out)."""
    membership = _optional_object(person, "loyalty_tier_membership", "customer")
    values = {
        "tier": _tier_name(membership, "loyalty_tier", "customer.loyalty_tier_membership"),
        "balance": _integer(person.get("points_approved"), "customer.points_approved"),
        "segment": _segment(person.get("insights_segment"), "customer.insights_segment"),
    }
    return {name: value for name, value in values.items() if value is not None}


def customer_of(value: Any, where: str) -> PlatformCustomer:
    if not isinstance(value, Mapping):
        raise DeliveryInvalid(f"{where} must be an object")
    platform_id = value.get("id")
    if platform_id is not None and (
        isinstance(platform_id, bool) or not isinstance(platform_id, int)
    ):
        raise DeliveryInvalid(f"{where}.id must be an integer")
    merchant_id = value.get("merchant_id")
    if isinstance(merchant_id, bool) or not isinstance(merchant_id, str | int | type(None)):
        raise DeliveryInvalid(f"{where}.merchant_id must be text")
    return PlatformCustomer(
        platform_id=platform_id,
        merchant_id=str(merchant_id).strip() or None if merchant_id is not None else None,
        email=_text(value.get("email"), f"{where}.email"),
    )


def _display_name(person: Mapping[str, Any], where: str) -> str | None:
    props = _optional_object(person, "properties", where)
    name = _text(props.get("name"), f"{where}.properties.name")
    if name:
        return name
    first = _text(props.get("first_name"), f"{where}.properties.first_name")
    last = _text(props.get("last_name"), f"{where}.properties.last_name")
    return " ".join(part for part in (first, last) if part) or None


# ---- one reader per topic: LoyaltyLion payload (unwrapped) -> the project's properties


def _tier_move(p: Mapping[str, Any], customer: Mapping[str, Any]) -> Properties:
    new = _optional_object(p, "new_tier", "payload")
    return {
        "previous_tier": _tier_name(p, "previous_tier", "payload"),
        "new_tier": _tier_name(p, "new_tier", "payload"),
        "tier_lower_bound": _hundredths(new.get("lower_bound"), "payload.new_tier.lower_bound"),
        "tier_upper_bound": _hundredths(new.get("upper_bound"), "payload.new_tier.upper_bound"),
    }


def _rewards(p: Mapping[str, Any], customer: Mapping[str, Any]) -> Properties:
    raw = p.get("available_rewards")
    if not isinstance(raw, list):
        raise DeliveryInvalid("payload.available_rewards must be an array")
    rewards = []
    for n, item in enumerate(raw):
        where = f"payload.available_rewards[{n}]"
        if not isinstance(item, Mapping):
            raise DeliveryInvalid(f"{where} must be an object")
        rewards.append(
            {
                "reward_id": _integer(item.get("id"), f"{where}.id"),
                "title": _text(item.get("title"), f"{where}.title"),
                "kind": _text(item.get("kind"), f"{where}.kind"),
                "cost_points": _integer(item.get("point_cost"), f"{where}.point_cost"),
            }
        )
    return {
        "available_rewards": rewards,
        "points_balance": _integer(customer.get("points_approved"), "customer.points_approved"),
        # LoyaltyLion lists only rewards the customer can afford now: not re-filtered.
        "rewards_prefiltered": True,
    }


def _reminder(p: Mapping[str, Any], customer: Mapping[str, Any]) -> Properties:
    return _rewards(p, customer) | {
        "points_approved_in_interval": _integer(
            p.get("points_approved_in_interval"), "payload.points_approved_in_interval"
        ),
        "points_interval_start_date": _day(
            p.get("points_interval_start_date"), "payload.points_interval_start_date"
        ),
    }


def _approaching(p: Mapping[str, Any], customer: Mapping[str, Any]) -> Properties:
    return {
        "current_tier": _tier_name(p, "current_tier", "payload"),
        "next_tier": _tier_name(p, "next_tier", "payload"),
        "points_required": _integer(p.get("points_required"), "payload.points_required"),
        "spend_required": _number(p.get("spend_required"), "payload.spend_required"),
    }


def _segment_move(p: Mapping[str, Any], customer: Mapping[str, Any]) -> Properties:
    return {
        "new_segment": _segment(p.get("new_insight_segment"), "payload.new_insight_segment"),
        "previous_segment": _segment(
            p.get("previous_insight_segment"), "payload.previous_insight_segment"
        ),
    }


def _claimed(p: Mapping[str, Any], customer: Mapping[str, Any]) -> Properties:
    return {
        "reward_title": _text(p.get("title"), "payload.title"),
        "reward_type": _text(p.get("reward_type"), "payload.reward_type"),
        "voucher_code": _text(p.get("voucher_code"), "payload.voucher_code"),
        # LoyaltyLion's claimed_reward carries no points cost: points_spent is left out.
    }


def _expiring(p: Mapping[str, Any], customer: Mapping[str, Any]) -> Properties:
    points = _integer(p.get("points_to_expire"), "payload.points_to_expire")
    if points is None:  # null: every approved point expires (inactivity-based expiry)
        points = _integer(customer.get("points_approved"), "customer.points_approved")
    return {
        "points_to_expire": points,
        "expire_points_at": _time(p.get("expire_points_at"), "payload.expire_points_at"),
    }


def _referral(p: Mapping[str, Any], customer: Mapping[str, Any]) -> Properties:
    referred = _object(p, "referred_customer", "payload")
    activity = _optional_object(p, "activity", "payload")
    return {
        "referred_customer": _display_name(referred, "payload.referred_customer") or "a friend",
        "points_awarded": _integer(activity.get("value"), "payload.activity.value"),
    }


def _rule(p: Mapping[str, Any], customer: Mapping[str, Any]) -> Properties:
    activity = _object(p, "activity", "payload")
    rule = _optional_object(activity, "rule", "payload.activity")
    return {
        "rule_name": _text(rule.get("title"), "payload.activity.rule.title"),
        "points_awarded": _integer(activity.get("value"), "payload.activity.value"),
    }


def _points_earned(p: Mapping[str, Any], customer: Mapping[str, Any]) -> Properties:
    transaction = _object(p, "transaction", "payload")
    activity = _optional_object(transaction, "activity", "payload.transaction")
    rule = _optional_object(activity, "rule", "payload.transaction.activity")
    approved = _integer(transaction.get("points_approved"), "payload.transaction.points_approved")
    pending = _integer(transaction.get("points_pending"), "payload.transaction.points_pending")
    return {
        "rule_name": _text(rule.get("title"), "payload.transaction.activity.rule.title"),
        "points_awarded": (approved or 0) + (pending or 0),
    }


# LoyaltyLion topic (without "program_events/") -> the project's key and the reader.
TOPICS: Mapping[str, tuple[EventKey, Reader]] = {
    "customer.tier_upgraded": (EventKey.TIER_UPGRADED, _tier_move),
    "customer.tier_downgraded": (EventKey.TIER_DOWNGRADED, _tier_move),
    "customer.reward_available_notification": (EventKey.REWARD_AVAILABLE, _rewards),
    "customer.recurring_reward_available_reminder": (EventKey.REWARD_REMINDER, _reminder),
    "customer.approaching_tier_upgrade": (EventKey.APPROACHING_TIER, _approaching),
    "customer.moved_to_loyal_segment": (EventKey.MOVED_TO_LOYAL, _segment_move),
    "customer.moved_to_at_risk_segment": (EventKey.MOVED_TO_AT_RISK, _segment_move),
    "customer.moved_to_defected_segment": (EventKey.MOVED_TO_WIN_BACK, _segment_move),
    "customer.claimed_reward": (EventKey.REWARD_CLAIMED, _claimed),
    "customer.approaching_points_expiration": (EventKey.POINTS_EXPIRING, _expiring),
    "customer.referral_complete": (EventKey.REFERRAL_COMPLETE, _referral),
    "customer.rule_completed": (EventKey.ACTIVITY_COMPLETED, _rule),
    "customer.points_earned": (EventKey.ACTIVITY_COMPLETED, _points_earned),
}

# Whose event it is: the referrer for a referral, else the customer.
_SUBJECT = {"customer.referral_complete": "referring_customer"}


def _unwrap(payload: Mapping[str, Any]) -> tuple[Mapping[str, Any], datetime | None]:
    """The event's fields and, from the full wrapper, when it happened."""
    inner = payload.get("properties")
    wrapped = isinstance(inner, Mapping) and not any(
        name in payload for name in ("customer", "referring_customer")
    )
    if not wrapped:
        return payload, None
    assert isinstance(inner, Mapping)
    return inner, _time(payload.get("created_at"), "payload.created_at")


def _event_time(topic: str, fields: Mapping[str, Any]) -> datetime | None:
    if topic in ("customer.rule_completed", "customer.referral_complete"):
        activity = fields.get("activity")
        if isinstance(activity, Mapping):
            return _time(activity.get("created_at"), "payload.activity.created_at")
    if topic == "customer.points_earned":
        transaction = fields.get("transaction")
        if isinstance(transaction, Mapping):
            return _time(transaction.get("created_at"), "payload.transaction.created_at")
    return None


class LoyaltyLionAdapter:
    """The ``PlatformAdapter`` for LoyaltyLion (see ``platform``)."""

    name = "loyaltylion"
    path = "/loyaltylion"

    def __init__(self, secret: SecretStr) -> None:
        if not secret.get_secret_value():
            raise ValueError("the LoyaltyLion secret must not be empty")
        self._secret = secret

    def require_headers(self, headers: Mapping[str, str]) -> None:
        if not headers.get(SIGNATURE_HEADER):
            raise SignatureRejected(f"missing {SIGNATURE_HEADER} header")

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        self.require_headers(headers)
        given = headers.get(SIGNATURE_HEADER, "").strip().encode()
        if not hmac.compare_digest(signature(self._secret, body).encode(), given):
            raise SignatureRejected(f"{SIGNATURE_HEADER} does not match the body")

    def translate(self, document: dict[str, Any]) -> Translated | Acknowledged:
        event_id = document.get("id")
        if not isinstance(event_id, str) or not 1 <= len(event_id.strip()) <= 150:
            raise DeliveryInvalid("id must be text of 1 to 150 characters")
        raw_topic = document.get("topic")
        if not isinstance(raw_topic, str) or not raw_topic:
            raise DeliveryInvalid("topic must be text")
        ours = f"{self.name}:{event_id.strip()}"
        sent_at = _time(document.get("created_at"), "created_at")
        topic = raw_topic.removeprefix(TOPIC_PREFIX)
        if topic == PROFILE_TOPIC:
            payload = document.get("payload")
            holder = payload if isinstance(payload, Mapping) and "customer" in payload else document
            person = holder.get("customer")
            who = customer_of(person, "customer")  # refuses a customer that is no object
            return Acknowledged(
                ours, raw_topic, "profile_update", who, detail=profile_of(cast(Mapping, person))
            )
        if topic not in TOPICS:
            return Acknowledged(ours, raw_topic, "unknown_topic")
        payload = document.get("payload")
        if not isinstance(payload, Mapping):
            raise DeliveryInvalid("payload must be an object")
        fields, wrapper_time = _unwrap(payload)
        subject = _SUBJECT.get(topic, "customer")
        raw_customer = fields.get(subject)
        customer = customer_of(raw_customer, f"payload.{subject}")
        assert isinstance(raw_customer, Mapping)
        key, read = TOPICS[topic]
        properties = {k: v for k, v in read(fields, raw_customer).items() if v is not None}
        occurred_at = wrapper_time or _event_time(topic, fields) or sent_at
        if occurred_at is None:
            raise DeliveryInvalid("created_at is required when the payload carries no time")
        if key is EventKey.POINTS_EXPIRING and "expire_points_at" in properties:
            days = (properties["expire_points_at"].date() - occurred_at.date()).days
            properties["notice_days"] = max(days, 0)
        return Translated(ours, key, occurred_at, _jsonable(properties), customer, raw_topic)


def _jsonable(properties: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in properties.items():
        if isinstance(value, datetime):
            out[name] = value.isoformat().replace("+00:00", "Z")
        elif isinstance(value, date):
            out[name] = value.isoformat()
        else:
            out[name] = value
    return out
