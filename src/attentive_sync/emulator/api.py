"""The contract's endpoints: handlers that run once the gauntlet let a request through."""

from __future__ import annotations

import json
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from attentive_sync.emulator import rules
from attentive_sync.emulator.errors import ApiError
from attentive_sync.emulator.jobs import COMPLETED
from attentive_sync.emulator.pipeline import (
    BULK_SUBMIT,
    JOB_STATUS,
    Endpoint,
    emulator_state,
    guarded,
)
from attentive_sync.emulator.users import identifiers_from_v1, identifiers_from_v2
from attentive_sync.emulator.validation import (
    bulk_user_problem,
    bulk_users,
    custom_attributes_problem,
    custom_event_problem,
    single_user_problem,
)

USER_WRITE = frozenset({"attributes:write", "subscriptions:write"})
RESULTS_ROUTE = "bulk_job_results"
ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


async def read_json(request: Request) -> Any:
    """The body as JSON (RFC 8259: UTF-8, no NaN or Infinity), or a 400."""
    try:
        return orjson.loads(await request.body())
    except ValueError as exc:
        raise ApiError(400, "request body is not valid JSON") from exc


def _bad_request(problem: str | None) -> None:
    if problem is not None:
        raise ApiError(400, problem)


async def _me(request: Request) -> Response:
    """Who the key belongs to (``/v1/me`` and ``/v2/me`` answer alike)."""
    config = emulator_state(request).config
    return JSONResponse(
        {
            "applicationName": config.application_name,
            "attentiveDomainName": config.attentive_domain_name,
            "companyName": config.company_name,
            "contactEmail": config.contact_email,
            "companyId": config.company_id,
        }
    )


me_v1 = guarded(Endpoint("me_v1"))(_me)
me_v2 = guarded(Endpoint("me_v2"))(_me)


@guarded(Endpoint("bulk_user_attributes", BULK_SUBMIT, USER_WRITE, may_lose_response=True))
async def bulk_user_attributes(request: Request) -> Response:
    """Accept up to 256 users as one job; bad users become failed records, not a 400."""
    users = bulk_users(await read_json(request))
    problems = [bulk_user_problem(user) for user in users]
    job_id = emulator_state(request).submit_job(users, problems)
    message = f"Accepted {len(users)} user(s) for processing"
    return JSONResponse({"message": message, "batchJobId": job_id}, status_code=202)


@guarded(Endpoint("bulk_job_status", JOB_STATUS))
async def bulk_job_status(request: Request) -> Response:
    job_id = request.path_params["bulkJobId"]
    found = emulator_state(request).job_status(job_id)
    if found is None:
        raise ApiError(404, "no bulk job has this id")
    status, total = found
    body: dict[str, Any] = {"bulkJobId": job_id, "status": status, "totalRecords": total}
    if status == COMPLETED:
        body["url"] = str(request.url_for(RESULTS_ROUTE, bulkJobId=job_id))
    return JSONResponse(body)


@guarded(Endpoint("bulk_job_results", JOB_STATUS))
async def bulk_job_results(request: Request) -> Response:
    """The per-record results file, once the job has completed."""
    found = emulator_state(request).job_results(request.path_params["bulkJobId"])
    if found is None:
        raise ApiError(404, "no bulk job has this id")
    status, text = found
    if text is None:
        raise ApiError(404, f"the job has no results file while {status}")
    return Response(text, media_type="application/x-ndjson")


@guarded(Endpoint("user_attributes", scopes=USER_WRITE))
async def user_attributes(request: Request) -> Response:
    """One user, applied at once."""
    body = await read_json(request)
    _bad_request(single_user_problem(body))
    state = emulator_state(request)
    identifiers = identifiers_from_v2(body["identifiers"])
    _bad_request(state.upsert_user(identifiers, body.get("attributes", {})))
    return JSONResponse({"success": True, "message": "user updated"}, status_code=202)


@guarded(Endpoint("custom_events", scopes=frozenset({"events:write"}), may_lose_response=True))
async def custom_events(request: Request) -> Response:
    """Store the event (once per externalEventId); 200 with no body, as documented."""
    body = await read_json(request)
    _bad_request(custom_event_problem(body))
    emulator_state(request).add_event(body)
    return Response(status_code=200)


@guarded(Endpoint("custom_attributes", scopes=frozenset({"attributes:write"})))
async def post_custom_attributes(request: Request) -> Response:
    body = await read_json(request)
    _bad_request(custom_attributes_problem(body))
    identifiers = identifiers_from_v1(body["user"])
    _bad_request(emulator_state(request).upsert_user(identifiers, {"custom": body["properties"]}))
    return Response(status_code=200)


def _as_text(value: Any) -> str:
    """The contract returns attribute values as strings."""
    return value if isinstance(value, str) else json.dumps(value)


@guarded(Endpoint("custom_attributes_read", scopes=frozenset({"attributes:write"})))
async def get_custom_attributes(request: Request) -> Response:
    """Read a user's custom attributes by exactly one of ``phone=`` or ``email=``."""
    given = [kind for kind in ("phone", "email") if kind in request.query_params]
    if len(given) != 1:
        raise ApiError(400, "give exactly one of the query parameters phone or email")
    kind = given[0]
    value = request.query_params[kind]
    try:
        (rules.check_phone if kind == "phone" else rules.check_email)(value, kind)
    except rules.RuleError as exc:
        raise ApiError(400, str(exc)) from exc
    custom = emulator_state(request).custom_attributes(kind, value)
    if custom is None:
        raise ApiError(404, f"no user has this {kind}")
    return JSONResponse([{"name": name, "value": _as_text(v)} for name, v in custom.items()])


@guarded(Endpoint("unmatched", authenticated=False))
async def unmatched(request: Request) -> Response:
    raise ApiError(404, f"no endpoint for {request.method} {request.url.path}")


def api_routes() -> list[BaseRoute]:
    """The contract's routes; anything else falls through to a 404 in the error envelope."""
    return [
        Route("/v1/me", me_v1, methods=["GET"]),
        Route("/v2/me", me_v2, methods=["GET"]),
        Route("/v2/bulk/user/attributes", bulk_user_attributes, methods=["POST"]),
        Route("/v2/bulk/job/{bulkJobId}", bulk_job_status, methods=["GET"]),
        Route(
            "/v2/bulk/job/{bulkJobId}/results.jsonl",
            bulk_job_results,
            methods=["GET"],
            name=RESULTS_ROUTE,
        ),
        Route("/v2/user/attributes", user_attributes, methods=["POST"]),
        Route("/v1/events/custom", custom_events, methods=["POST"]),
        Route("/v1/attributes/custom", post_custom_attributes, methods=["POST"]),
        Route("/v1/attributes/custom", get_custom_attributes, methods=["GET"]),
        Route("/{path:path}", unmatched, methods=ALL_METHODS),
    ]
