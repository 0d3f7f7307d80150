"""The audience export configuration: what the Prefect UI renders as the flows' parameter form."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Literal, TypeAlias

import phonenumbers
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from attentive_sync.domain.attributes import MAX_ATTRIBUTE_NAME, WELL_KNOWN

ChangesFrom = Literal["queue", "diff", "both"]
IdentifierName = Literal["phone", "email", "clientUserId", "shopifyId", "klaviyoId"]
SLUG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]*$")
MAX_BATCH = 256
# Choice lists built at runtime: pydantic validates against (and the Prefect UI renders) the
# Literal; a type checker cannot read a Literal of computed values, so it sees plain ``str``.
if TYPE_CHECKING:
    WellKnownName: TypeAlias = str
    Region: TypeAlias = str
else:
    WellKnownName = Literal[tuple(WELL_KNOWN)]
    # The regions phonenumbers can parse national numbers for.
    Region = Literal[tuple(sorted(phonenumbers.SUPPORTED_REGIONS))]


class ExportConfig(BaseModel):
    """Which audiences go to Attentive and how customer fields map to Attentive's fields.

    Each audience becomes a boolean custom attribute named after its slug: ``true`` while the
    customer is a member, ``false`` once they exit.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    audiences: list[str] = Field(
        default_factory=list, description="Audience slugs to export; each is a boolean attribute."
    )
    identifier_mappings: dict[str, IdentifierName] = Field(
        description=(
            "Customer field -> Attentive identifier (phone, email, clientUserId, shopifyId, "
            "klaviyoId). Required: at least one."
        ),
        examples=[{"phone": "phone", "email": "email"}],
    )
    extra_identifiers: list[str] = Field(
        default_factory=list,
        description="Customer fields sent as Attentive custom identifiers named after the field.",
    )
    attribute_mappings: dict[str, WellKnownName] = Field(
        default_factory=dict,
        description="Customer field -> Attentive well-known attribute (firstName, city, ...).",
    )
    custom_attributes: list[str] = Field(
        default_factory=list,
        description="Customer fields sent as custom attributes named after the field.",
    )
    changes_from: ChangesFrom = Field(
        "queue",
        description=(
            "Where audience enters/exits come from: queue (deltas a producer enqueues), diff "
            "(audience_members compared with what was last sent, every incremental run) or "
            "both (the queue, with the diff repairing what it missed)."
        ),
    )
    existing_users: bool = Field(True, description="Run the one-time backfill of current members.")
    batch_size: int = Field(MAX_BATCH, ge=1, le=MAX_BATCH, description="Users per bulk request.")
    flush_interval_seconds: float = Field(30.0, gt=0, description="Longest wait before a flush.")
    default_region: Region = Field(
        "US", description="Region for national phone numbers (ISO 3166 code, e.g. US, GB)."
    )

    @field_validator("audiences")
    @classmethod
    def _slugs(cls, value: list[str]) -> list[str]:
        bad = [s for s in value if not SLUG_RE.match(s) or len(s) > MAX_ATTRIBUTE_NAME]
        if bad:
            raise ValueError(f"audience slugs must be letters, digits, '_' or '-': {bad}")
        if len(set(value)) != len(value):
            raise ValueError("audiences are listed more than once")
        return value

    @field_validator("default_region", mode="before")
    @classmethod
    def _known_region(cls, value: object) -> object:
        # Before the choice check, so a typo reads as one line, not the list of 240 regions.
        if isinstance(value, str) and value.upper() in phonenumbers.SUPPORTED_REGIONS:
            return value.upper()
        raise ValueError(
            f"default_region {value!r} is not a region phonenumbers knows "
            "(a two-letter ISO 3166 code such as US, GB or DE)"
        )

    @field_validator("identifier_mappings")
    @classmethod
    def _at_least_one(cls, value: dict[str, str]) -> dict[str, str]:
        if not value:
            raise ValueError(
                "at least one identifier mapping is required "
                "(customer field -> phone, email, clientUserId, shopifyId or klaviyoId)"
            )
        targets = list(value.values())
        if len(set(targets)) != len(targets):
            raise ValueError("two customer fields map to the same Attentive identifier")
        return value

    @model_validator(mode="after")
    def _no_clash_with_audiences(self) -> ExportConfig:
        clash = set(self.custom_attributes) & set(self.audiences)
        if clash:
            raise ValueError(f"custom attributes share a name with an audience: {sorted(clash)}")
        return self

    def fields_read(self) -> set[str]:
        """Every customer field the mapping reads (to check against the source up front)."""
        return (
            set(self.identifier_mappings)
            | set(self.extra_identifiers)
            | set(self.attribute_mappings)
            | set(self.custom_attributes)
        )
