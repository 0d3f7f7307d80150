"""One line of a bulk job's results file -> a ``RecordResult``.

Attentive documents the file only as "a record of each request and its corresponding
response", one JSON object per line, so the reader takes every plausible shape of that
record rather than one guessed layout:

- the per-record status under ``status``, ``statusCode``, ``status_code``, ``httpStatus``
  or ``code``, in the line's ``response`` object first, then at the top level (an integer,
  or an integer in a string; the first readable one wins, so ``"status": "OK"`` beside
  ``"statusCode": 200`` reads 200);
- the record's position in the submitted request under ``index``, or, when a line carries
  none, the order of the line among the file's records (the file lists them in request
  order);
- a message under ``response.message``, ``message``, or an ``error`` text or object.

A line that is not a JSON object, or that carries no readable status or index, makes the
whole file unreadable (``ResultsUnreadable`` naming the line): guessing an outcome could
settle a record Attentive refused, or quarantine one it accepted.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import orjson

from attentive_sync.attentive._exceptions import ResultsUnreadable
from attentive_sync.attentive._models import RecordResult

STATUS_KEYS = ("status", "statusCode", "status_code", "httpStatus", "code")
MESSAGE_KEYS = ("message", "error")


def parse_result_line(line: str, number: int, position: int) -> RecordResult:
    """Parse one line; ``number`` is its 1-based line number (for errors), ``position`` its
    0-based order among the file's records (the index when the line has none)."""
    try:
        row = _loads(line)
    except ValueError as exc:
        raise ResultsUnreadable(f"results file line {number} is not JSON", line=number) from exc
    if not isinstance(row, dict):
        raise ResultsUnreadable(f"results file line {number} is not a JSON object", line=number)
    response = row.get("response")
    scopes: tuple[Mapping[str, Any], ...] = (
        (response, row) if isinstance(response, dict) else (row,)
    )
    if scopes[0] is response:
        # The usual line: {"index": n, "response": {"status": 202, ...}, ...}; the first
        # key looked at answers, so the rest are not.
        status, index = response.get("status"), row.get("index", position)
        if type(status) is int and 100 <= status <= 599 and type(index) is int and index >= 0:
            request = row.get("request")
            return RecordResult(
                index, status, _message(scopes), request if isinstance(request, dict) else {}
            )
    found = [scope[key] for scope in scopes for key in STATUS_KEYS if scope.get(key) is not None]
    if not found:
        raise ResultsUnreadable(
            f"results file line {number} carries no status (looked for "
            f"{', '.join(STATUS_KEYS)}, in response and at the top level)",
            line=number,
        )
    status = next((value for value in found if _readable_status(value)), found[0])
    index = row.get("index", position)
    request = row.get("request")
    return RecordResult(
        index=_integer(index, "index", number, low=0),
        status=_integer(status, "status", number, low=100, high=599),
        message=_message(scopes),
        request=request if isinstance(request, dict) else {},
    )


def _loads(line: str) -> Any:
    """orjson, and ``json`` for what orjson alone refuses (a lone surrogate escape in a
    message, a NaN): such a line is still a readable record."""
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        return json.loads(line)


def _first(scopes: tuple[Mapping[str, Any], ...], keys: tuple[str, ...]) -> Any:
    for scope in scopes:
        for key in keys:
            if scope.get(key) is not None:
                return scope[key]
    return None


def _readable_status(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, str):
        value = int(value) if value.strip().isdigit() else None
    return isinstance(value, int) and 100 <= value <= 599


def _integer(value: Any, name: str, number: int, *, low: int, high: int | None = None) -> int:
    """An integer, from a JSON number or a numeric string; bools and fractions are refused."""
    parsed: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        parsed = value
    elif isinstance(value, str) and value.strip().isdigit():
        parsed = int(value)
    if parsed is None or parsed < low or (high is not None and parsed > high):
        raise ResultsUnreadable(f"results file line {number}: {name} is not readable", line=number)
    return parsed


def _message(scopes: tuple[Mapping[str, Any], ...]) -> str:
    value = _first(scopes, MESSAGE_KEYS)
    if isinstance(value, dict):
        value = value.get("message", "")
    return "" if value is None else str(value)
