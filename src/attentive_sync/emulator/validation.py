"""What arrives, checked against the contract: schema first, then the documented rules.

Every function returns ``None`` for a good payload or one message for a bad one; the
bulk envelope alone raises, because a bad envelope fails the whole request.
"""

from __future__ import annotations

from typing import Any

from attentive_sync.emulator import rules
from attentive_sync.emulator.contract import SchemaCheck, describe, load_bundle, schema_for
from attentive_sync.emulator.errors import ApiError

BULK_USER = SchemaCheck("v2", "CreateUserAttributesRequestDtoV21")
SINGLE_USER = SchemaCheck("v2", "CreateUserAttributesRequestDtoV2")
CUSTOM_EVENT = SchemaCheck("v1", "CustomEventsRequest")
CUSTOM_ATTRIBUTES = SchemaCheck("v1", "CustomAttributesRequest")


def _envelope_validator() -> Any:
    """``UserAttributes`` without its item schema: items are judged one by one, later.

    DECISION: ``users`` is required and must be an array (the published schema states
    neither); its 1..256 bounds come from the contract itself.
    """
    users = load_bundle("v2")["components"]["schemas"]["UserAttributes"]["properties"]["users"]
    bounds = {key: users[key] for key in ("minItems", "maxItems")}
    return schema_for(
        "v2",
        "UserAttributes",
        {
            "type": "object",
            "required": ["users"],
            "properties": {"users": {"type": "array", **bounds}},
        },
    )


_ENVELOPE = _envelope_validator()
MAX_BULK_USERS: int = _ENVELOPE.schema["properties"]["users"]["maxItems"]


def bulk_users(body: Any) -> list[Any]:
    """The ``users`` of a bulk request, or a whole-request 400 for a bad envelope."""
    error = next(iter(_ENVELOPE.iter_errors(body)), None)
    if error is not None:
        raise ApiError(400, describe(error))
    return body["users"]


def _user_item_problem(check: SchemaCheck, item: Any) -> str | None:
    problem = check.problem(item)
    if problem is not None:
        return problem
    if rules.v2_user_plainly_valid(item.get("identifiers", {}), item.get("attributes", {})):
        return None
    try:
        rules.check_v2_identifiers(item.get("identifiers", {}))
        rules.check_attributes(item.get("attributes", {}))
    except rules.RuleError as exc:
        return str(exc)
    return None


def bulk_user_problem(item: Any) -> str | None:
    """Why one bulk user item would fail (it becomes a failed record), or ``None``."""
    return _user_item_problem(BULK_USER, item)


def single_user_problem(body: Any) -> str | None:
    """Why a ``POST /v2/user/attributes`` body is a 400, or ``None``."""
    return _user_item_problem(SINGLE_USER, body)


def custom_event_problem(body: Any) -> str | None:
    """Why a ``POST /v1/events/custom`` body is a 400, or ``None``."""
    problem = CUSTOM_EVENT.problem(body)
    if problem is not None:
        return problem
    try:
        rules.check_event_type(body["type"])
        rules.check_event_user(body["user"])
        rules.check_property_keys(body.get("properties", {}))
        if "occurredAt" in body:
            rules.check_rfc3339(body["occurredAt"], "occurredAt")
        if "externalEventId" in body:
            rules.check_not_empty(body["externalEventId"], "externalEventId")
    except rules.RuleError as exc:
        return str(exc)
    return None


def custom_attributes_problem(body: Any) -> str | None:
    """Why a ``POST /v1/attributes/custom`` body is a 400, or ``None``."""
    problem = CUSTOM_ATTRIBUTES.problem(body)
    if problem is not None:
        return problem
    try:
        rules.check_event_user(body["user"])
        rules.check_custom_values(body["properties"], "properties")
    except rules.RuleError as exc:
        return str(exc)
    return None
