"""``/_emulator/``: look inside the emulator and steer its faults while it runs.

No key is needed, so these routes answer only loopback peers: a network peer with any
other address gets 403 (in-process test clients have no address and are let through).
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from attentive_sync.emulator.errors import ApiError, error_response
from attentive_sync.emulator.pipeline import emulator_state
from attentive_sync.emulator.users import IDENTIFIER_KINDS

MAX_PAGE = 1000


class Storm(BaseModel):
    """A 429 storm: the next ``storm_requests`` API requests, and all for ``storm_seconds``."""

    model_config = ConfigDict(extra="forbid")

    storm_requests: int = Field(0, ge=0)
    storm_seconds: float = Field(0.0, ge=0)


def _from_loopback(request: Request) -> bool:
    host = request.client.host if request.client else None
    try:
        return host is None or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True


def _int_param(request: Request, name: str, default: int, upper: int) -> int:
    raw = request.query_params.get(name, str(default))
    if not raw.isdigit() or int(raw) > upper:
        raise ApiError(400, f"{name} must be a whole number from 0 to {upper}")
    return int(raw)


async def users(request: Request) -> Response:
    """Users with identifiers and attributes; filter by phone=, email=, clientUserId=, ..."""
    filters = {k: v for k, v in request.query_params.items() if k in IDENTIFIER_KINDS}
    offset = _int_param(request, "offset", 0, 10**9)
    limit = _int_param(request, "limit", 100, MAX_PAGE)
    total, page = emulator_state(request).users_page(filters, offset, limit)
    return JSONResponse({"total": total, "offset": offset, "users": page})


async def events(request: Request) -> Response:
    """Events as stored (once per externalEventId), with their delivery counts."""
    return JSONResponse(emulator_state(request).list_events(request.query_params.get("type")))


async def jobs(request: Request) -> Response:
    return JSONResponse({"jobs": emulator_state(request).list_jobs()})


async def requests_log(request: Request) -> Response:
    limit = _int_param(request, "limit", MAX_PAGE, 10**9)
    return JSONResponse({"requests": emulator_state(request).list_requests(limit)})


async def stats(request: Request) -> Response:
    return JSONResponse(emulator_state(request).stats())


async def rates(request: Request) -> Response:
    """Arrivals per key and endpoint, per second and over the busiest sliding second."""
    return JSONResponse({"keys": emulator_state(request).rate_report()})


async def get_faults(request: Request) -> Response:
    return JSONResponse(emulator_state(request).faults_snapshot())


async def post_faults(request: Request) -> Response:
    """Change fault settings; ``storm_requests``/``storm_seconds`` start a 429 storm."""
    try:
        body: Any = json.loads(await request.body())
    except ValueError as exc:
        raise ApiError(400, "request body is not valid JSON") from exc
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object of fault settings")
    storm_fields = {name: body.pop(name) for name in Storm.model_fields if name in body}
    try:
        storm = Storm.model_validate(storm_fields)
        snapshot = emulator_state(request).change_faults(
            body, storm.storm_requests, storm.storm_seconds
        )
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ApiError(400, problems) from exc
    return JSONResponse(snapshot)


async def reset(request: Request) -> Response:
    emulator_state(request).reset()
    return JSONResponse({"reset": True})


def _local_only(handler: Any) -> Any:
    async def checked(request: Request) -> Response:
        try:
            if not _from_loopback(request):
                raise ApiError(403, "the inspection API answers loopback clients only")
            return await handler(request)
        except ApiError as exc:
            return error_response(exc.status, exc.message, 0)

    return checked


def inspection_routes() -> list[BaseRoute]:
    routes = [
        Route("/users", _local_only(users), methods=["GET"]),
        Route("/events", _local_only(events), methods=["GET"]),
        Route("/jobs", _local_only(jobs), methods=["GET"]),
        Route("/requests", _local_only(requests_log), methods=["GET"]),
        Route("/stats", _local_only(stats), methods=["GET"]),
        Route("/rates", _local_only(rates), methods=["GET"]),
        Route("/faults", _local_only(get_faults), methods=["GET"]),
        Route("/faults", _local_only(post_faults), methods=["POST"]),
        Route("/reset", _local_only(reset), methods=["POST"]),
    ]
    return [Mount("/_emulator", routes=routes)]
