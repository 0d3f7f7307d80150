"""Configuration: one typed settings tree, entered once from the environment.

``ATTENTIVE_*`` configures the Attentive client, ``ATTENTIVE_SYNC_*`` the engine.
Secrets are ``SecretStr`` and never printed.
"""

from __future__ import annotations

from typing import Literal

import httpx
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_BASE_URL = "https://api.attentivemobile.com"
DEMO_API_KEY = "demo-key-all-scopes"


class AttentiveSettings(BaseSettings):
    """How to reach Attentive and how politely."""

    model_config = SettingsConfigDict(env_prefix="ATTENTIVE_", env_file=".env", extra="ignore")

    api_key: SecretStr | None = None
    base_url: str = DEFAULT_BASE_URL
    connect_timeout: float = Field(5.0, gt=0)
    read_timeout: float = Field(30.0, gt=0)
    max_attempts: int = Field(6, ge=1, le=20)
    backoff_base: float = Field(0.5, gt=0)
    backoff_cap: float = Field(30.0, gt=0)
    bulk_rate_limit: float = Field(100.0, gt=0, description="bulk submit + job status, req/s")
    default_rate_limit: float = Field(150.0, gt=0, description="events, attributes, /me, req/s")

    @field_validator("base_url")
    @classmethod
    def _absolute_http_url(cls, value: str) -> str:
        # A relative or scheme-less URL would fail on every request, after every retry.
        try:
            url = httpx.URL(value)
        except httpx.InvalidURL:
            url = httpx.URL()
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(
                f"ATTENTIVE_BASE_URL must be an http(s) URL such as {DEFAULT_BASE_URL}, "
                f"got {value!r}"
            )
        return value

    @field_validator("api_key", mode="before")
    @classmethod
    def _blank_is_missing(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    rate_limit_headroom: float = Field(
        0.02,
        ge=0,
        lt=0.5,
        description=(
            "share of each limit left unused: requests are paced evenly, and the headroom "
            "absorbs the jitter that bunches them on the way to the server"
        ),
    )


class SyncSettings(BaseSettings):
    """The engine's own settings."""

    model_config = SettingsConfigDict(env_prefix="ATTENTIVE_SYNC_", env_file=".env", extra="ignore")

    db_url: str = "sqlite:///attentive_sync.db"
    source_url: str | None = Field(
        None,
        description="The loyalty program's database (reference schema or views); default db_url",
    )
    intake_secret: SecretStr | None = None
    loyaltylion_secret: SecretStr | None = Field(
        None, description="LoyaltyLion's site (or OAuth client) secret; enables POST /loyaltylion"
    )
    loyalty_match: Literal["merchant_id", "platform_id", "email"] = Field(
        "merchant_id", description="How a loyalty platform's customer finds its program row"
    )
    loyalty_program: str = Field(
        "Loyalty",
        description=(
            "Program name that prefixes the profile attributes a platform's profile update "
            "writes (the same as the loyalty flows' events.program)"
        ),
    )
    send_concurrency: int = Field(8, ge=1, le=64, description="bulk requests in flight at once")
    # Longer than a run's worst case (client backoff plus the bulk-send task's retries),
    # so a lease never expires under a worker that is still sending its rows.
    lease_seconds: float = Field(900.0, gt=0)
    poll_interval_seconds: float = Field(1.0, gt=0)
    uncertain_hold_seconds: float = Field(
        900.0,
        gt=0,
        description=(
            "After a bulk submission whose fate is unknown (lost answer, 5xx), how long its "
            "customers' next writes wait: longer than any job Attentive takes to finish"
        ),
    )
    max_attempts: int = Field(
        8, ge=1, le=50, description="Attempts per record before it goes to the quarantine"
    )
    retry_backoff_seconds: float = Field(
        30.0, gt=0, description="First wait before a record is tried again (then doubled)"
    )
    retry_backoff_cap_seconds: float = Field(
        3600.0, gt=0, description="Longest wait between two attempts of a record"
    )

    @property
    def loyalty_url(self) -> str:
        return self.source_url or self.db_url
