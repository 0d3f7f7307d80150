"""The HTTP intake: where upstream systems push audience deltas and loyalty events.

    POST /deltas   one delta, or {"deltas": [...]}        -> 202 stored | 200 all duplicates
    POST /events   one loyalty webhook envelope            -> 202 stored | 200 duplicate
    GET  /health   liveness, unauthenticated

Every POST must carry ``X-Signature: sha256=<HMAC-SHA256 of the raw body>``; the body is
verified before it is parsed, and nothing is stored for a request that fails. A 2xx is
sent only after the queue's transaction has committed, so a sender that sees one may
forget the item, and a sender that sees anything else may safely retry: the queues are
idempotent on the delta key and the event id.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from attentive_sync.intake.payloads import PayloadError, parse_deltas, parse_event
from attentive_sync.intake.signing import SIGNATURE_HEADER, signature_matches
from attentive_sync.store import Store

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1_048_576


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _verified_body(request: Request, secret: SecretStr) -> bytes | JSONResponse:
    """The raw body if it is small enough and correctly signed, else the error response."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        return _error(413, f"body over {MAX_BODY_BYTES} bytes")
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        return _error(413, f"body over {MAX_BODY_BYTES} bytes")
    header = request.headers.get(SIGNATURE_HEADER)
    if header is None:
        return _error(401, f"missing {SIGNATURE_HEADER} header")
    if not signature_matches(secret, body, header):
        log.warning("intake: rejected %s with a bad signature", request.url.path)
        return _error(401, f"{SIGNATURE_HEADER} does not match the body")
    return body


Handler = Callable[[Request], Awaitable[JSONResponse]]


def _handler(
    secret: SecretStr,
    parse: Callable[[bytes], list[Any]],
    enqueue: Callable[[list[Any]], Any],
    answer: Callable[[list[Any], Any], JSONResponse],
) -> Handler:
    """Verify the signature, parse, store durably, then answer: the shape of every POST."""

    async def handle(request: Request) -> JSONResponse:
        body = await _verified_body(request, secret)
        if isinstance(body, JSONResponse):
            return body
        try:
            items = parse(body)
        except PayloadError as exc:
            return _error(400, str(exc))
        return answer(items, await run_in_threadpool(enqueue, items))

    return handle


def _deltas_answer(deltas: list[Any], result: Any) -> JSONResponse:
    log.info("intake: %d deltas stored, %d duplicates", result.stored, result.duplicates)
    return JSONResponse(
        {"stored": result.stored, "duplicates": result.duplicates},
        status_code=202 if result.stored else 200,
    )


def _event_answer(events: list[Any], result: Any) -> JSONResponse:
    (event,) = events
    duplicate = result.stored == 0
    log.info("intake: event %s %s", event.event_id, "duplicate" if duplicate else "stored")
    return JSONResponse(
        {"id": event.event_id, "duplicate": duplicate}, status_code=200 if duplicate else 202
    )


async def health(_request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


def create_intake_app(store: Store, secret: SecretStr) -> Starlette:
    """The intake as an ASGI app writing to ``store``, trusting bodies signed with ``secret``."""
    if not secret.get_secret_value():
        raise ValueError("the intake secret must not be empty")
    return Starlette(
        routes=[
            Route(
                "/deltas",
                _handler(secret, parse_deltas, store.deltas.enqueue, _deltas_answer),
                methods=["POST"],
            ),
            Route(
                "/events",
                _handler(secret, lambda b: [parse_event(b)], store.events.enqueue, _event_answer),
                methods=["POST"],
            ),
            Route("/health", health, methods=["GET"]),
        ]
    )
