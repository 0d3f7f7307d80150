"""One user record for the Bulk User Attributes API."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from attentive_sync.domain.attributes import Attributes
from attentive_sync.domain.identifiers import Identifiers


class BulkUser(BaseModel):
    """Identifiers plus attributes; ``customer_id`` ties it back to the source, never sent."""

    model_config = ConfigDict(frozen=True)

    customer_id: int
    identifiers: Identifiers
    attributes: Attributes = Attributes()

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {"identifiers": self.identifiers.to_wire()}
        attributes = self.attributes.to_wire()
        if attributes:
            wire["attributes"] = attributes
        return wire
