"""The HTTP intake: where upstream systems push audience deltas and loyalty events.

    POST /deltas       one delta, or {"deltas": [...]}     -> 202 stored | 200 all duplicates
    POST /events       one loyalty webhook envelope        -> 202 stored | 200 duplicate
    POST /loyaltylion  a LoyaltyLion webhook delivery      -> 202 stored | 200 duplicate,
                       profile update or a topic not relayed (acknowledged and counted)
    GET  /health       liveness and the acknowledged-topic counts, unauthenticated

``/deltas`` and ``/events`` are signed the Standard Webhooks way (``signing``); a platform
endpoint is signed its platform's way (``loyaltylion``). Every POST goes through the same
steps, and a request refused at any step stores nothing:

1. the signature headers must be present (and a Standard Webhooks timestamp recent) (401)
   and the content type JSON (415), before a byte of the body is read;
2. the body is read up to 1 MiB and refused the moment it passes that (413), chunked or not;
3. the signature is checked over the raw bytes (401);
4. the JSON is parsed with bounded depth and range-checked numbers, and validated with
   strict types (400, one line naming the field, never its value);
5. an id already queued with a different content is a 409 naming the id;
6. the item is enqueued, and only once the transaction has committed is the answer sent:
   a sender that sees a 2xx may forget the item, and one that sees anything else may
   retry, since the queues are idempotent on the delta key and the event id.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any, cast

from pydantic import SecretStr
from sqlalchemy import Engine, Table, select
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from attentive_sync.domain.loyalty.attributes import profile_attributes
from attentive_sync.domain.loyalty.catalogue import DEFAULT_PROGRAM, RECIPIENT_KEY
from attentive_sync.intake.bodies import BodyRefused, parse_json_object, read_capped, require_json
from attentive_sync.intake.identity import MatchBy, Matcher
from attentive_sync.intake.payloads import PayloadError, parse_deltas, parse_event
from attentive_sync.intake.platform import (
    Acknowledged,
    DeliveryInvalid,
    PlatformAdapter,
    Translated,
)
from attentive_sync.intake.signing import (
    ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    SignatureRejected,
    check_headers,
    verify,
)
from attentive_sync.store import Store
from attentive_sync.store.records import NewDelta, NewEvent, NewWrite
from attentive_sync.store.tables import audience_deltas, loyalty_events

log = logging.getLogger(__name__)

Handler = Callable[[Request], Awaitable[JSONResponse]]


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class ReusedId(Exception):
    """An id already queued (or repeated in the request) with a different content."""

    def __init__(self, key: str) -> None:
        super().__init__(f"id {key!r} was already received with a different body")
        self.key = key


# ---- the reused-id check: compare what the queue holds with what was sent


def _canonical(values: Mapping[str, Any], fields: Sequence[str]) -> str:
    def norm(value: Any) -> Any:
        if isinstance(value, datetime):
            aware = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
            return aware.astimezone(timezone.utc).isoformat()
        return value

    return json.dumps({f: norm(values[f]) for f in fields}, sort_keys=True, default=str)


_EVENT_FIELDS = ("topic", "customer_id", "occurred_at", "payload")
_DELTA_FIELDS = ("audience", "customer_id", "action", "occurred_at")


def _check_reused(
    engine: Engine,
    table: Table,
    key_column: str,
    items: Sequence[NewEvent | NewDelta],
    fields: Sequence[str],
    same: Callable[[Mapping[str, Any], Mapping[str, Any]], bool] | None = None,
) -> None:
    """Raise ``ReusedId`` for the first item whose key is held with other content."""
    sent: dict[str, Mapping[str, Any]] = {}
    for item in items:
        values: Mapping[str, Any] = item.values()
        earlier = sent.setdefault(item.key, values)
        if earlier is not values and _canonical(earlier, fields) != _canonical(values, fields):
            raise ReusedId(item.key)
    column = table.c[key_column]
    with engine.connect() as conn:
        rows = conn.execute(select(table).where(column.in_(list(sent)[:1000]))).mappings().all()
    # Keyed by column name; RowMapping's key type also admits Column objects, hence the cast.
    stored = cast(Sequence[Mapping[str, Any]], rows)
    for row in stored:
        values = sent[row[key_column]]
        if same is not None:
            if not same(row, values):
                raise ReusedId(row[key_column])
        elif _canonical(row, fields) != _canonical(values, fields):
            raise ReusedId(row[key_column])


def _same_platform_event(stored: Mapping[str, Any], sent: Mapping[str, Any]) -> bool:
    """A platform redelivery may be matched to another customer or carry another send
    time; it is the same event when its topic and properties are the same."""

    def content(values: Mapping[str, Any]) -> str:
        payload = {k: v for k, v in dict(values["payload"]).items() if k != RECIPIENT_KEY}
        return json.dumps([values["topic"], payload], sort_keys=True, default=str)

    return content(stored) == content(sent)


# ---- the project's own endpoints


def _own_handler(
    secret: SecretStr,
    parse: Callable[[bytes], list[Any]],
    store_items: Callable[[list[Any]], Any],
    answer: Callable[[list[Any], Any], JSONResponse],
) -> Handler:
    async def handle(request: Request) -> JSONResponse:
        headers = request.headers
        try:
            check_headers(
                headers.get(ID_HEADER), headers.get(TIMESTAMP_HEADER), headers.get(SIGNATURE_HEADER)
            )
            require_json(request)
            body = await read_capped(request)
            verify(
                secret,
                body,
                headers.get(ID_HEADER),
                headers.get(TIMESTAMP_HEADER),
                headers.get(SIGNATURE_HEADER),
            )
            items = parse(body)
            result = await run_in_threadpool(store_items, items)
        except BodyRefused as exc:
            return _error(exc.status, exc.reason)
        except SignatureRejected as exc:
            log.warning("intake: rejected %s: %s", request.url.path, exc)
            return _error(401, str(exc))
        except PayloadError as exc:
            return _error(400, str(exc))
        except ReusedId as exc:
            return _error(409, str(exc))
        return answer(items, result)

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


# ---- platform endpoints


def _platform_handler(
    adapter: PlatformAdapter, store: Store, matcher: Matcher, counts: Counter[str], program: str
) -> Handler:
    def write_profile(outcome: Acknowledged) -> bool:
        """Queue a profile update of a matched customer as an attribute write (the loyalty
        events flow sends it); an unmatched customer's profile has nowhere to go."""
        values = outcome.detail
        if outcome.customer is None or not values:
            return False
        recipient = matcher.resolve(adapter.name, outcome.customer)
        attributes = profile_attributes(
            values.get("tier"), values.get("balance"), values.get("segment"), program=program
        )
        if not recipient.matched or not attributes:
            return False
        key = f"profile:{recipient.customer_id}:{outcome.event_id}"[:200]
        now = datetime.now(timezone.utc)
        write = NewWrite(key, "profile", recipient.customer_id, attributes, now)
        store.writes.enqueue([write], now=now)
        return True

    def enqueue(outcome: Translated) -> tuple[NewEvent, int]:
        recipient = matcher.resolve(adapter.name, outcome.customer)
        payload = dict(outcome.properties)
        if not recipient.matched:
            payload[RECIPIENT_KEY] = recipient.identifiers
        event = NewEvent(
            event_id=outcome.event_id,
            topic=outcome.key.value,
            customer_id=recipient.customer_id,
            occurred_at=outcome.occurred_at,
            payload=payload,
        )
        check = (store.engine, loyalty_events, "event_id", [event], _EVENT_FIELDS)
        _check_reused(*check, same=_same_platform_event)
        stored = store.events.enqueue([event]).stored
        if not stored:
            _check_reused(*check, same=_same_platform_event)
        return event, stored

    async def handle(request: Request) -> JSONResponse:
        try:
            adapter.require_headers(request.headers)
            require_json(request)
            body = await read_capped(request)
            adapter.verify(request.headers, body)
            outcome = adapter.translate(parse_json_object(body))
            if isinstance(outcome, Acknowledged):
                profile = outcome.kind == "profile_update"
                if profile and await run_in_threadpool(write_profile, outcome):
                    return JSONResponse(
                        {"id": outcome.event_id, "queued": "profile"}, status_code=202
                    )
                counts[f"{outcome.kind}:{outcome.platform_topic}"] += 1
                log.info(
                    "intake: %s %s acknowledged as %s (not queued)",
                    adapter.name,
                    outcome.platform_topic,
                    outcome.kind,
                )
                return JSONResponse(
                    {"id": outcome.event_id, "acknowledged": outcome.kind}, status_code=200
                )
            event, stored = await run_in_threadpool(enqueue, outcome)
        except BodyRefused as exc:
            return _error(exc.status, exc.reason)
        except SignatureRejected as exc:
            log.warning("intake: rejected %s: %s", request.url.path, exc)
            return _error(401, str(exc))
        except DeliveryInvalid as exc:
            return _error(400, f"invalid {adapter.name} delivery: {exc}")
        except ReusedId as exc:
            return _error(409, str(exc))
        log.info(
            "intake: %s %s -> %s %s (%s)",
            adapter.name,
            outcome.platform_topic,
            event.topic,
            event.event_id,
            "stored" if stored else "duplicate",
        )
        return JSONResponse(
            {"id": event.event_id, "topic": event.topic, "duplicate": not stored},
            status_code=202 if stored else 200,
        )

    return handle


def create_intake_app(
    store: Store,
    secret: SecretStr,
    *,
    platforms: Sequence[PlatformAdapter] = (),
    source: Engine | None = None,
    match_by: MatchBy = "merchant_id",
    program: str = DEFAULT_PROGRAM,
) -> Starlette:
    """The intake as an ASGI app writing to ``store``: the project's own endpoints trust
    requests signed with ``secret``; each of ``platforms`` is mounted at its ``path``,
    matching its customers in ``source`` (the state store's database by default)."""
    if not secret.get_secret_value():
        raise ValueError("the intake secret must not be empty")

    def store_deltas(items: list[NewDelta]) -> Any:
        explicit = [item for item in items if item.delta_key]
        if explicit:
            _check_reused(store.engine, audience_deltas, "delta_key", explicit, _DELTA_FIELDS)
        return store.deltas.enqueue(items)

    def store_event(items: list[NewEvent]) -> Any:
        check = (store.engine, loyalty_events, "event_id", items, _EVENT_FIELDS)
        _check_reused(*check)
        result = store.events.enqueue(items)
        if result.duplicates:
            _check_reused(*check)  # a concurrent first delivery with another body
        return result

    counts: Counter[str] = Counter()
    matcher = Matcher(source if source is not None else store.engine, match_by)

    async def health(_request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "acknowledged": dict(counts)})

    routes = [
        Route(
            "/deltas",
            _own_handler(secret, parse_deltas, store_deltas, _deltas_answer),
            methods=["POST"],
        ),
        Route(
            "/events",
            _own_handler(secret, lambda b: [parse_event(b)], store_event, _event_answer),
            methods=["POST"],
        ),
        Route("/health", health, methods=["GET"]),
    ]
    routes += [
        Route(p.path, _platform_handler(p, store, matcher, counts, program), methods=["POST"])
        for p in platforms
    ]
    app = Starlette(routes=routes)
    app.state.acknowledged = counts
    return app
