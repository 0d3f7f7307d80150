"""Which loyalty events a merchant sends (All or Some), and what happens to stale ones."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import Enum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from attentive_sync.domain.loyalty.catalogue import DEPRECATED_KEYS, EventKey

# Attentive accepts older events but they trigger no journey.
STALE_AFTER = timedelta(hours=12)


class EventSelection(BaseModel):
    """``mode="all"`` sends every key except deprecated ones unless ``include_deprecated``;
    ``mode="some"`` sends exactly ``keys``, deprecated or not.

    Plain JSON-friendly fields, so it can be a Prefect flow parameter as it is. The list is
    ``keys`` in JSON but ``chosen`` in Python: an attribute named ``keys`` would shadow the
    mapping protocol Prefect uses when it turns a model parameter into a dict.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    mode: Literal["all", "some"] = "all"
    chosen: list[EventKey] = Field(default_factory=list, alias="keys")
    include_deprecated: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> EventSelection:
        if self.mode == "some" and not self.chosen:
            raise ValueError("mode 'some' needs at least one event key")
        if self.mode == "all" and self.chosen:
            raise ValueError("keys apply only to mode 'some'; use mode 'some' to choose keys")
        return self

    def selects(self, key: EventKey) -> bool:
        if self.mode == "some":
            return key in self.chosen
        return self.include_deprecated or key not in DEPRECATED_KEYS

    @classmethod
    def parse(cls, text: str) -> EventSelection:
        """Read the configuration form ``all`` or ``some:key1,key2`` (for CLI and env)."""
        mode, _, rest = text.partition(":")
        mode = mode.strip().casefold()
        if mode not in ("all", "some"):
            raise ValueError(f"event selection must be 'all' or 'some:key1,key2', not {text!r}")
        names = [name.strip() for name in rest.split(",") if name.strip()]
        unknown = sorted(set(names) - {key.value for key in EventKey})
        if unknown:
            raise ValueError(f"unknown event key(s): {', '.join(unknown)}")
        return cls.model_validate({"mode": mode, "keys": names})


class StalePolicy(str, Enum):
    """What to do with an event too old to trigger a journey: send it anyway, or skip it."""

    SEND = "send"
    SKIP = "skip"


def is_stale(occurred_at: datetime, now: datetime, threshold: timedelta = STALE_AFTER) -> bool:
    """True once the event is older than ``threshold``; events from the future are not stale."""
    for name, moment in (("occurred_at", occurred_at), ("now", now)):
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ValueError(f"{name} must carry a timezone offset")
    return now - occurred_at > threshold
