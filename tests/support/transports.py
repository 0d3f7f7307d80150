"""httpx transports that misbehave on purpose, for tests over a real socket."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx


class CutResults(httpx.HTTPTransport):
    """Delivers the first ``limit`` bytes of each results file, then the connection drops.

    Every other request passes through untouched.
    """

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self.cut = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if not request.url.path.endswith("results.jsonl") or not response.is_success:
            return response
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=_Truncated(self, response.stream),  # type: ignore[arg-type]
            extensions=response.extensions,
        )


class _Truncated(httpx.SyncByteStream):
    def __init__(self, owner: CutResults, inner: httpx.SyncByteStream) -> None:
        self._owner, self._inner = owner, inner

    def __iter__(self) -> Iterator[bytes]:
        sent, limit = 0, self._owner.limit
        for chunk in self._inner:
            if sent + len(chunk) >= limit:
                yield chunk[: limit - sent]
                self._owner.cut += 1
                raise httpx.RemoteProtocolError("peer closed connection mid-body")
            sent += len(chunk)
            yield chunk

    def close(self) -> None:
        self._inner.close()


class Recording(httpx.HTTPTransport):
    """Passes every request through and keeps the JSON body of each POST: the exact
    payloads that reach the emulator."""

    def __init__(self) -> None:
        super().__init__()
        self.posts: list[tuple[str, Any]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            self.posts.append((request.url.path, json.loads(request.read())))
        return super().handle_request(request)

    def bulk_users(self) -> list[dict[str, Any]]:
        """Every user record of every bulk request, in the order sent."""
        return [
            user
            for path, body in self.posts
            if path == "/v2/bulk/user/attributes"
            for user in body["users"]
        ]

    def events(self) -> list[dict[str, Any]]:
        return [body for path, body in self.posts if path == "/v1/events/custom"]


class RewriteResults(httpx.HTTPTransport):
    """Hands every results file through ``rewrite(lines) -> text``, where ``lines`` are the
    emulator's parsed result lines; every other request passes through untouched."""

    def __init__(self, rewrite: Callable[[list[dict[str, Any]]], str]) -> None:
        super().__init__()
        self.rewrite = rewrite
        self.files = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if not request.url.path.endswith("results.jsonl") or not response.is_success:
            return response
        lines = [json.loads(line) for line in response.read().decode().splitlines() if line]
        self.files += 1
        return httpx.Response(response.status_code, text=self.rewrite(lines))
