"""The Attentive client (httpx): typed errors, one retry owner, a shared rate limiter."""

from attentive_sync.attentive._client import MAX_BULK_USERS, AttentiveClient
from attentive_sync.attentive._exceptions import (
    AttentiveError,
    AuthenticationError,
    NotFound,
    PermissionDenied,
    RateLimited,
    RequestRejected,
    ResultsUnreadable,
    RetryableError,
    ServerError,
    StopRun,
    TransportError,
)
from attentive_sync.attentive._models import AccountInfo, BulkJob, RecordResult
from attentive_sync.attentive._ratelimit import (
    RateBucket,
    TokenBucket,
    bucket_owner,
    group_rates,
)
from attentive_sync.attentive._retry import BackoffPolicy, parse_retry_after, retry_delay

__all__ = [
    "MAX_BULK_USERS",
    "AccountInfo",
    "AttentiveClient",
    "AttentiveError",
    "AuthenticationError",
    "BackoffPolicy",
    "BulkJob",
    "NotFound",
    "PermissionDenied",
    "RateBucket",
    "RateLimited",
    "RecordResult",
    "RequestRejected",
    "ResultsUnreadable",
    "RetryableError",
    "ServerError",
    "StopRun",
    "TokenBucket",
    "TransportError",
    "bucket_owner",
    "group_rates",
    "parse_retry_after",
    "retry_delay",
]
