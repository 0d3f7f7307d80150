"""Retry timing: a small pure function, tested from a table of cases."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime


@dataclass(frozen=True)
class BackoffPolicy:
    max_attempts: int = 6
    base: float = 0.5
    cap: float = 30.0


def parse_retry_after(value: str | None, now_epoch: float) -> float | None:
    """``Retry-After`` as seconds: a number of seconds or an HTTP date. None when absent or junk."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now_epoch)
    except (TypeError, ValueError):
        return None


def ratelimit_wait(headers: Mapping[str, str]) -> float | None:
    """With ``x-ratelimit-remaining: 0`` the per-second window is spent: wait for the next one."""
    remaining = headers.get("x-ratelimit-remaining")
    if remaining is None:
        return None
    try:
        return 1.0 if int(float(remaining)) <= 0 else None
    except ValueError:
        return None


def retry_delay(
    attempt: int,
    policy: BackoffPolicy,
    retry_after: float | None,
    headers: Mapping[str, str],
    rand: Callable[[], float],
) -> float:
    """Seconds to wait before retry number ``attempt`` (1-based).

    Retry-After wins when present; else the rate-limit headers; else capped exponential
    backoff with full jitter (half fixed, half random, so the wait is never zero).
    """
    if retry_after is not None:
        return min(retry_after, policy.cap)
    from_headers = ratelimit_wait(headers)
    if from_headers is not None:
        return min(from_headers * (0.5 + rand()), policy.cap)
    ceiling = min(policy.cap, policy.base * 2 ** (attempt - 1))
    return ceiling / 2 + rand() * ceiling / 2
