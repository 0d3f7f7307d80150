"""Errors raised by the Attentive client, sorted by what the caller does next.

AttentiveError
├── RetryableError          retry later: the same request may succeed
│   ├── RateLimited           429
│   ├── ServerError           5xx
│   └── TransportError        connection failed, timed out or dropped
├── RequestRejected         400: this request (or a record in it) will never succeed as sent
├── StopRun                 the run cannot go on until a person acts
│   ├── AuthenticationError   401: missing or unknown API key
│   └── PermissionDenied      403: the key lacks a scope
├── NotFound                404: e.g. an unknown bulk job id
└── ResultsUnreadable       a results file broke off or holds a line that cannot be read:
                            none of its records may be settled from it
"""

from __future__ import annotations

import httpx

from attentive_sync.masking import mask_text

BODY_LOG_LIMIT = 300


class AttentiveError(Exception):
    """Base of every error the client raises."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        body: str = "",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = mask_text(body[:BODY_LOG_LIMIT])
        self.headers = headers or {}


class RetryableError(AttentiveError):
    """The same request may succeed later.

    ``may_have_applied``: the request may have been carried out although it failed (a
    5xx, or a connection lost after the request went out), so a bulk job may exist at
    Attentive that nobody recorded.
    """

    may_have_applied = False

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.retry_after = retry_after


class RateLimited(RetryableError):
    pass


class ServerError(RetryableError):
    may_have_applied = True


class TransportError(RetryableError):
    """The connection failed; ``sent`` says whether the request may have gone out."""

    def __init__(self, message: str, *, sent: bool = True, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.may_have_applied = sent


class RequestRejected(AttentiveError):
    pass


class StopRun(AttentiveError):
    pass


class AuthenticationError(StopRun):
    pass


class PermissionDenied(StopRun):
    pass


class NotFound(AttentiveError):
    pass


class ResultsUnreadable(AttentiveError):
    """A bulk job's results file cannot be read to its end.

    Raised mid-iteration, after some records were already yielded: the caller must drop
    what it collected and treat the whole file as unread, never settle part of it. ``line``
    is the 1-based line number of the unreadable line, or of the last line read before the
    download broke off (0: none). ``broke_off`` tells a download that broke off (another
    download may succeed) from a file whose content cannot be read (none will).
    """

    def __init__(self, message: str, *, line: int, broke_off: bool = False, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.line = line
        self.broke_off = broke_off


REQUIRED_SCOPES = {
    "bulk": "attributes:write and subscriptions:write",
    "events": "events:write",
}


def _error_message(response: httpx.Response) -> str:
    try:
        message = response.json()["error"]["message"]
        return mask_text(str(message))[:BODY_LOG_LIMIT]
    except (ValueError, KeyError, TypeError):
        return mask_text(response.text[:BODY_LOG_LIMIT])


def error_for_response(
    response: httpx.Response, group: str, retry_after: float | None
) -> AttentiveError:
    """The one place that maps an HTTP status to a typed error."""
    status = response.status_code
    detail = _error_message(response)
    rate_headers = {k: v for k, v in response.headers.items() if k.startswith("x-ratelimit-")}
    kw: dict = {"status": status, "body": response.text, "headers": rate_headers}
    if status == 401:
        return AuthenticationError(
            "Attentive rejected the API key (401): check ATTENTIVE_API_KEY", **kw
        )
    if status == 403:
        scopes = REQUIRED_SCOPES.get(group, "the scope this endpoint requires")
        return PermissionDenied(f"the API key lacks a scope (403): this call needs {scopes}", **kw)
    if status == 404:
        return NotFound(f"not found (404): {detail}", **kw)
    if status == 429:
        return RateLimited("rate limited by Attentive (429)", retry_after=retry_after, **kw)
    if status >= 500:
        return ServerError(f"Attentive server error ({status})", retry_after=retry_after, **kw)
    return RequestRejected(f"request rejected ({status}): {detail}", **kw)
