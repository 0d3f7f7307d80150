"""Reading and parsing request bodies without trusting them.

Every rule here runs before the body reaches a model, and every refusal is a
``BodyRefused`` carrying the HTTP status and a one-line reason that never repeats the
submitted values:

* the content type must be JSON (415);
* the body is read chunk by chunk and abandoned as soon as it passes the cap (413), so a
  chunked upload with no ``Content-Length`` costs at most the cap in memory;
* JSON is parsed by pydantic-core (no recursion in Python: nesting past its limit of 200
  is an error, not a crash), NaN and Infinity are refused, and so is any number outside
  the 64-bit integer range or that overflows a float (400).
"""

from __future__ import annotations

import math
from typing import Any

import pydantic_core
from starlette.requests import Request

MAX_BODY_BYTES = 1_048_576
MAX_INT = 2**63 - 1
MIN_INT = -(2**63)


class BodyRefused(Exception):
    """A request the intake answers with ``status`` and ``reason``; nothing is stored."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def require_json(request: Request) -> None:
    """415 unless the declared media type is ``application/json`` (or ``*/*+json``)."""
    declared = request.headers.get("content-type", "")
    media = declared.split(";", 1)[0].strip().lower()
    if media != "application/json" and not (
        media.startswith("application/") and media.endswith("+json")
    ):
        shown = media or "none"
        raise BodyRefused(415, f"content type must be application/json, not {shown}")


async def read_capped(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The whole body, or 413 the moment it grows past ``limit`` (declared or not)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyRefused(413, f"body over {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyRefused(413, f"body over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _out_of_range(value: Any, path: str) -> str | None:
    """The path of the first number out of range, iteratively (depth is bounded anyway)."""
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, bool) or item is None or isinstance(item, str):
            continue
        if isinstance(item, int):
            if not MIN_INT <= item <= MAX_INT:
                return where
        elif isinstance(item, float):
            if not math.isfinite(item):
                return where
        elif isinstance(item, dict):
            stack.extend((v, f"{where}.{k}") for k, v in item.items())
        elif isinstance(item, list):
            stack.extend((v, f"{where}[{n}]") for n, v in enumerate(item))
    return None


def parse_json(body: bytes | str) -> Any:
    """Parse ``body`` as JSON with the limits above; ``BodyRefused(400)`` if it breaks one."""
    try:
        value = pydantic_core.from_json(body, allow_inf_nan=False)
    except ValueError as exc:
        reason = str(exc)
        if "recursion limit" in reason:
            raise BodyRefused(400, "body is nested too deeply (limit 200 levels)") from exc
        raise BodyRefused(400, f"body is not valid JSON: {reason}") from exc
    where = _out_of_range(value, "body")
    if where is not None:
        raise BodyRefused(
            400, f"{where}: number out of range (integers must fit in 64 bits, floats be finite)"
        )
    return value


def parse_json_object(body: bytes | str) -> dict[str, Any]:
    value = parse_json(body)
    if not isinstance(value, dict):
        raise BodyRefused(400, f"body must be a JSON object, not {_json_type(value)}")
    return value


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return "a number"
