"""Configuration of one emulator instance: keys and scopes, limits, timings, faults."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from attentive_sync.settings import DEMO_API_KEY

ALL_SCOPES: frozenset[str] = frozenset(
    {
        "attributes:write",
        "subscriptions:write",
        "events:write",
        "ecommerce:write",
        "segments:write",
        "segments:read",
    }
)
"""The scopes named by the v2 contract's OAuth flow (a test keeps this list in step)."""


class FaultSettings(BaseModel):
    """Faults injected on purpose, so clients prove they survive a misbehaving Attentive.

    Rates are probabilities in [0, 1] drawn from the emulator's seeded random generator.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    error_rate: float = Field(0.0, ge=0, le=1, description="share of API answers that are 5xx")
    latency_ms: float = Field(0.0, ge=0, le=60_000, description="delay added to each API answer")
    fail_job_rate: float = Field(0.0, ge=0, le=1, description="share of bulk jobs ending FAILED")
    slow_job_rate: float = Field(0.0, ge=0, le=1, description="share of bulk jobs that are slow")
    slow_job_delay: float = Field(5.0, ge=0, description="seconds a slow job takes to finish")
    drop_rate: float = Field(0.0, ge=0, le=1, description="share of connections closed unanswered")
    lose_response_rate: float = Field(
        0.0,
        ge=0,
        le=1,
        description="share of accepted bulk submits and custom events handled, then not answered",
    )


class EmulatorConfig(BaseModel):
    """Everything that shapes one emulator; the defaults follow the published contract."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    keys: dict[str, frozenset[str]] = Field(default_factory=lambda: {DEMO_API_KEY: ALL_SCOPES})
    job_delay: float = Field(0.2, ge=0, description="seconds from bulk submit to completion")
    bulk_rate_limit: int = Field(100, ge=1, description="bulk submits per key per second")
    job_status_rate_limit: int = Field(100, ge=1, description="job status reads per key per second")
    default_rate_limit: int = Field(150, ge=1, description="other requests per key per second")
    send_retry_after: bool = Field(False, description="add Retry-After to 429s (Attentive won't)")
    faults: FaultSettings = FaultSettings()
    seed: int = Field(0, description="seed of every random draw, so runs repeat exactly")
    request_log_size: int = Field(10_000, ge=0, description="API requests kept for inspection")

    application_name: str = "attentive-sync emulator"
    attentive_domain_name: str = "emulated.attn.tv"
    company_name: str = "Emulated Brand"
    contact_email: str = "ops@emulated.example"
    company_id: str = "MDc6Q29tcGFueTE"

    @field_validator("keys")
    @classmethod
    def _known_scopes(cls, keys: dict[str, frozenset[str]]) -> dict[str, frozenset[str]]:
        for key, scopes in keys.items():
            if not key.strip():
                raise ValueError("an API key must not be empty")
            unknown = sorted(scopes - ALL_SCOPES)
            if unknown:
                raise ValueError(
                    f"unknown scope(s) {', '.join(unknown)}; known: {', '.join(sorted(ALL_SCOPES))}"
                )
        return keys
