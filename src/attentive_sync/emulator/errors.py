"""The one error the API answers with, and its wire envelope.

Attentive documents a single error body, ``{"error": {"id": <int>, "message": "..."}}``;
every non-2xx answer of the emulator uses it. The id is the request's sequence number, so a
client log line can be matched with ``GET /_emulator/requests``.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.responses import JSONResponse


class ApiError(Exception):
    """Stop handling a request and answer ``status`` with ``message``."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


def error_response(status: int, message: str, request_id: int) -> JSONResponse:
    return JSONResponse({"error": {"id": request_id, "message": message}}, status_code=status)
