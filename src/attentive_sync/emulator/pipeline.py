"""The gauntlet every contract request runs before its handler, in Attentive's order.

1. injected latency, then an injected dropped connection;
2. authentication: no or unknown ``Authorization: Bearer`` key -> 401;
3. rate limit per key and endpoint (or an injected 429 storm) -> 429;
4. scopes: a valid key lacking a scope -> 403 naming the scope;
5. injected 5xx, before the handler runs, so a 5xx never has side effects;
6. after the handler, on endpoints that may lose their answer (bulk submit, custom event):
   an injected lost response. The request took effect (the job exists and will apply, the
   event is stored), then the connection is dropped, so the client sees a transport error.

Every answer but a dropped one carries ``x-ratelimit-limit`` and ``x-ratelimit-remaining``,
and every request lands in the journal.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import anyio
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from attentive_sync.emulator.errors import ApiError, error_response
from attentive_sync.emulator.ratelimit import Decision
from attentive_sync.emulator.state import EmulatorState

Handler = Callable[[Request], Awaitable[Response]]
BULK_SUBMIT = "bulk_submit"
JOB_STATUS = "job_status"
DEFAULT = "default"
ANONYMOUS = ""


@dataclass(frozen=True)
class Endpoint:
    """One contract endpoint: its journal name, rate-limit group and required scopes."""

    name: str
    group: str = DEFAULT
    scopes: frozenset[str] = frozenset()
    authenticated: bool = True
    may_lose_response: bool = False


class DroppedConnection(Response):
    """Starts an answer and never finishes it.

    uvicorn closes the socket when an application returns mid-response, so the client sees
    the connection die (httpx raises ``RemoteProtocolError``, a transport error).
    """

    def __init__(self) -> None:
        super().__init__(status_code=200)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"1")]}
        )


def emulator_state(request: Request) -> EmulatorState:
    return request.app.state.emulator


def bearer_key(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def _limit(state: EmulatorState, group: str) -> int:
    config = state.config
    return {
        BULK_SUBMIT: config.bulk_rate_limit,
        JOB_STATUS: config.job_status_rate_limit,
    }.get(group, config.default_rate_limit)


def _admit(endpoint: Endpoint, state: EmulatorState, key: str | None) -> Decision:
    """Steps 2 to 4; raises :class:`ApiError` carrying the limiter's verdict in its headers."""
    limit = _limit(state, endpoint.group)
    scopes = state.config.keys.get(key) if key else None
    if endpoint.authenticated and scopes is None:
        standing = state.standing(key or ANONYMOUS, endpoint.name, limit)
        reason = "unknown API key" if key else "missing 'Authorization: Bearer <key>' header"
        raise ApiError(401, reason, standing.headers())
    decision = state.admit(key or ANONYMOUS, endpoint.name, limit)
    if not decision.allowed:
        headers = decision.headers(with_retry_after=state.config.send_retry_after)
        raise ApiError(429, f"rate limit of {limit} requests per second exceeded", headers)
    missing = sorted(endpoint.scopes - (scopes or frozenset()))
    if missing:
        message = f"the API key lacks the scope(s): {', '.join(missing)}"
        raise ApiError(403, message, decision.headers())
    return decision


async def run(endpoint: Endpoint, handler: Handler, request: Request) -> Response:
    """Run one request through the gauntlet and its handler; always answers (or drops)."""
    state = emulator_state(request)
    request_id = state.next_request_id()
    key = bearer_key(request)
    latency_ms = state.faults.settings.latency_ms
    if latency_ms:
        await anyio.sleep(latency_ms / 1000)
    if state.draw_drop():
        state.record(request_id, request.method, request.url.path, endpoint.name, None, key)
        return DroppedConnection()
    headers: dict[str, str] = {}
    try:
        headers = _admit(endpoint, state, key).headers()
        injected = state.draw_server_error()
        if injected is not None:
            raise ApiError(injected, "injected server error", headers)
        response = await handler(request)
        if endpoint.may_lose_response and response.status_code < 300 and state.draw_lost_response():
            path = request.url.path
            state.record(request_id, request.method, path, endpoint.name, None, key, lost=True)
            return DroppedConnection()
    except ApiError as exc:
        response = error_response(exc.status, exc.message, request_id)
        headers = {**headers, **exc.headers}
    response.headers.update(headers)
    state.record(
        request_id, request.method, request.url.path, endpoint.name, response.status_code, key
    )
    return response


def guarded(endpoint: Endpoint) -> Callable[[Handler], Handler]:
    """Decorate a handler so it only runs after the gauntlet lets the request through."""

    def wrap(handler: Handler) -> Handler:
        async def guarded_handler(request: Request) -> Response:
            return await run(endpoint, handler, request)

        guarded_handler.__name__ = handler.__name__
        guarded_handler.__doc__ = handler.__doc__
        return guarded_handler

    return wrap
