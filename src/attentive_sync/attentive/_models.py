"""What the client returns: small frozen records parsed from Attentive's responses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# LOST is this engine's own: a job Attentive answers 404 for (it keeps jobs two weeks).
TERMINAL_STATUSES = frozenset({"COMPLETED", "FAILED", "LOST"})


@dataclass(frozen=True)
class AccountInfo:
    company_name: str
    company_id: str
    application_name: str


@dataclass(frozen=True)
class BulkJob:
    job_id: str
    status: str
    total_records: int | None
    results_url: str | None

    @property
    def finished(self) -> bool:
        """Unknown statuses count as unfinished: a new status must never crash a run."""
        return self.status.upper() in TERMINAL_STATUSES


@dataclass(frozen=True)
class RecordResult:
    """One line of a bulk job's results file."""

    index: int
    status: int
    message: str
    request: dict[str, Any]

    @property
    def accepted(self) -> bool:
        return 200 <= self.status < 300

    @property
    def retryable(self) -> bool:
        return self.status == 429 or self.status >= 500
