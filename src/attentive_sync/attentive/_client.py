"""The Attentive HTTP client: one retry owner for seconds-scale failures, polite by design."""

from __future__ import annotations

import itertools
import logging
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import httpx
import orjson

from attentive_sync.attentive._exceptions import (
    AttentiveError,
    ResultsUnreadable,
    RetryableError,
    TransportError,
    error_for_response,
)
from attentive_sync.attentive._models import AccountInfo, BulkJob, RecordResult
from attentive_sync.attentive._ratelimit import (
    BULK,
    EVENTS,
    JOBS,
    ME,
    RESULTS,
    RateBucket,
    process_buckets,
    ratelimit_headers,
)
from attentive_sync.attentive._results import parse_result_line
from attentive_sync.attentive._retry import BackoffPolicy, parse_retry_after, retry_delay
from attentive_sync.settings import AttentiveSettings

log = logging.getLogger("attentive_sync.attentive")
T = TypeVar("T")

MAX_BULK_USERS = 256
_JSON_BODY = {"Content-Type": "application/json"}


class AttentiveClient:
    """Synchronous client, safe to share between threads.

    ``transport``, ``sleep``, ``clock`` and ``rand`` are seams for tests: nothing waits for
    real in a unit test. ``buckets`` (endpoint group -> :class:`RateBucket`) replaces the
    process-wide buckets, e.g. with ones several processes share.
    """

    def __init__(
        self,
        settings: AttentiveSettings | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rand: Callable[[], float] = random.random,
        buckets: Mapping[str, RateBucket] | None = None,
    ) -> None:
        self.settings = settings or AttentiveSettings()
        if self.settings.api_key is None:
            raise AttentiveError("no Attentive API key: set ATTENTIVE_API_KEY")
        key = self.settings.api_key.get_secret_value()
        self._policy = BackoffPolicy(
            self.settings.max_attempts, self.settings.backoff_base, self.settings.backoff_cap
        )
        self._sleep = sleep
        self._rand = rand
        self._buckets: dict[str, RateBucket] = dict(buckets or process_buckets(self.settings))
        self._http = httpx.Client(
            base_url=self.settings.base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {key}", "Accept": "application/json"},
            timeout=httpx.Timeout(
                self.settings.read_timeout, connect=self.settings.connect_timeout
            ),
            transport=transport,
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
        )
        # Results files may live on another host (object storage): never send the key there.
        self._plain = httpx.Client(
            timeout=httpx.Timeout(
                self.settings.read_timeout, connect=self.settings.connect_timeout
            ),
            transport=transport,
        )
        self.requests_sent = 0
        self.retries = 0

    def close(self) -> None:
        self._http.close()
        self._plain.close()

    def __enter__(self) -> AttentiveClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the one retry owner ------------------------------------------------------------
    def _owns(self, url: str) -> bool:
        """Whether ``url`` is on Attentive's API host (relative URLs are)."""
        target = httpx.URL(url)
        return not target.is_absolute_url or target.host == self._http.base_url.host

    def _send_once(
        self, group: str, method: str, url: str, *, stream: bool = False, **kw: Any
    ) -> httpx.Response:
        """One request. With ``stream`` the body of a successful answer is left unread: the
        caller reads it and closes the response."""
        self._buckets[group].acquire()
        self.requests_sent += 1
        http = self._http if self._owns(url) else self._plain
        try:
            response = http.send(http.build_request(method, url, **kw), stream=stream)
        except httpx.TransportError as exc:
            # A connection never made carried nothing; any later failure may have.
            sent = not isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
            # Name the host: "cannot reach" is only actionable with the address it tried.
            target = _loggable(str(exc.request.url)) if _has_request(exc) else _loggable(url)
            message = f"{method} {target}: {type(exc).__name__} {exc}".strip()
            raise TransportError(message, sent=sent) from exc
        if self._owns(url):
            limit, remaining = ratelimit_headers(response.headers)
            self._buckets[group].observe(limit, remaining, response.status_code == 429)
        if response.is_success:
            return response
        try:
            response.read()
        except httpx.TransportError as exc:
            message = f"{method} {_loggable(url)}: {type(exc).__name__}"
            raise TransportError(message, sent=True) from exc
        finally:
            response.close()
        retry_after = parse_retry_after(response.headers.get("retry-after"), time.time())
        raise error_for_response(response, group, retry_after)

    def _retrying(
        self,
        method: str,
        url: str,
        attempt_once: Callable[[], T],
        on_uncertain: Callable[[], None] | None = None,
    ) -> T:
        """Run ``attempt_once`` until it succeeds, retrying retryable errors with backoff;
        ``on_uncertain`` is called when a failed attempt may still have been carried out
        by Attentive, before anything else is tried."""
        attempt = 1
        while True:
            try:
                return attempt_once()
            except RetryableError as exc:
                if exc.may_have_applied and on_uncertain is not None:
                    on_uncertain()
                if attempt >= self._policy.max_attempts:
                    raise
                delay = retry_delay(attempt, self._policy, exc.retry_after, exc.headers, self._rand)
                log.warning(
                    "%s %s failed (%s); retry %d/%d in %.2fs",
                    method,
                    _loggable(url),
                    exc,
                    attempt,
                    self._policy.max_attempts - 1,
                    delay,
                )
                self.retries += 1
                self._sleep(delay)
                attempt += 1

    def _request(
        self,
        group: str,
        method: str,
        url: str,
        on_uncertain: Callable[[], None] | None = None,
        **kw: Any,
    ) -> httpx.Response:
        return self._retrying(
            method, url, lambda: self._send_once(group, method, url, **kw), on_uncertain
        )

    # -- operations -----------------------------------------------------------------------
    def me(self) -> AccountInfo:
        """Validate the key: 401 raises AuthenticationError with a clear message."""
        body = self._request(ME, "GET", "/v1/me").json()
        return AccountInfo(
            company_name=str(body.get("companyName", "")),
            company_id=str(body.get("companyId", "")),
            application_name=str(body.get("applicationName", "")),
        )

    def submit_bulk_users(
        self,
        users: Sequence[Mapping[str, Any]],
        on_uncertain: Callable[[], None] | None = None,
    ) -> str:
        """POST 1..256 user records; return the batch job id.

        ``on_uncertain`` is called whenever an attempt failed in a way that may have left
        a job at Attentive (whose id nobody knows), so the caller can make sure no newer
        write of these users is sent while such a job could still land.
        """
        if not 1 <= len(users) <= MAX_BULK_USERS:
            raise ValueError(f"a bulk request carries 1..{MAX_BULK_USERS} users, got {len(users)}")
        # orjson: the body of 256 users is encoded several times faster than by ``json``.
        response = self._request(
            BULK,
            "POST",
            "/v2/bulk/user/attributes",
            on_uncertain=on_uncertain,
            content=orjson.dumps({"users": list(users)}),
            headers=_JSON_BODY,
        )
        job_id = response.json().get("batchJobId")
        if not job_id:
            raise AttentiveError(
                "bulk submit answered without a batchJobId", status=response.status_code
            )
        return str(job_id)

    def get_bulk_job(self, job_id: str) -> BulkJob:
        body = self._request(JOBS, "GET", f"/v2/bulk/job/{job_id}").json()
        status = str(body.get("status") or "UNKNOWN")
        total = body.get("totalRecords")
        return BulkJob(
            job_id=str(body.get("bulkJobId") or job_id),
            status=status.upper(),
            total_records=int(total) if total is not None else None,
            results_url=body.get("url") or body.get("resultUrl"),
        )

    def iter_bulk_results(self, results_url: str) -> Iterator[RecordResult]:
        """Per-record results, streamed one JSONL line at a time: memory stays flat.

        Until the first record is read, a retryable failure (5xx, 429, a dropped or timed
        out connection) is retried here like any request. Once records have been yielded,
        the download cannot be retried without yielding them twice: a connection that breaks
        off, or a line that cannot be read, raises ``ResultsUnreadable`` and the caller must
        treat the whole file as unread (never as results for the records before it).
        """
        response, records = self._retrying(
            "GET", results_url, lambda: self._open_results(results_url)
        )
        number = 0
        try:
            for position, (number, line) in enumerate(records):
                yield parse_result_line(line, number, position)
        except (httpx.TransportError, httpx.StreamError, httpx.DecodingError) as exc:
            raise ResultsUnreadable(
                f"results file broke off after line {number}: {type(exc).__name__}",
                line=number,
                broke_off=True,
            ) from exc
        finally:
            response.close()

    def _open_results(self, url: str) -> tuple[httpx.Response, Iterator[tuple[int, str]]]:
        """One attempt at a results file, read up to its first record (so a failure that
        early is retried); returns the open response and its numbered non-blank lines."""
        response = self._send_once(RESULTS, "GET", url, stream=True)
        try:
            lines = (
                (number, line)
                for number, line in enumerate(response.iter_lines(), start=1)
                if line.strip()
            )
            first = next(lines, None)
        except (httpx.TransportError, httpx.StreamError, httpx.DecodingError) as exc:
            response.close()
            raise TransportError(f"GET {_loggable(url)}: {type(exc).__name__}") from exc
        except BaseException:
            response.close()
            raise
        return response, lines if first is None else itertools.chain([first], lines)

    def send_custom_event(self, event: Mapping[str, Any]) -> None:
        self._request(EVENTS, "POST", "/v1/events/custom", json=dict(event))


def _has_request(exc: httpx.TransportError) -> bool:
    try:
        exc.request  # noqa: B018  (httpx raises when the error was built without one)
    except RuntimeError:
        return False
    return True


def _loggable(url: str) -> str:
    """A URL without its query string: presigned result links carry credentials there."""
    return str(httpx.URL(url).copy_with(query=None))
