"""Run reports whose counts add up, rendered as Markdown for the Prefect UI (and the terminal).

Counts are listed in the order the run added them, which is the order of its pipeline, each
with a one-line meaning for the person reading it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from attentive_sync.engine.delivery.submit import Batch


MEANINGS: dict[str, str] = {
    "members_read": "customers read from the exported audiences (a record each, all flags in it)",
    "considered": "customers the computation looked at",
    "eligible": "customers the rules make due for this notice",
    "with_balance": "customers with points left",
    "due": "customers whose points expire within the notice period",
    "already_notified": "due, but notified for this period before",
    "already_noticed": "due, but notified for this expiry before",
    "to_send": "notices this run owes",
    "claimed": "notices this run claimed and queued",
    "claimed_before": "notices an earlier run had claimed already",
    "attribute_writes_queued": "attribute writes queued for the notices' figures",
    "leased": "queued records this run took",
    "coalesced": "changes overtaken by a later change of the same customer and audience",
    "not_exported": "changes for audiences this configuration does not export",
    "early_flushes": "batches closed early so one customer's two changes go in order",
    "quarantined": "records that can never be sent as they are (see `quarantine list`)",
    "skipped_already_sent": "records a recorded job of this backfill carries already",
    "skipped_already_quarantined": "records the quarantine holds already",
    "writes_leased": "attribute writes this run took",
    "writes_overtaken": "writes a later write of the same customer covers",
    "writes_unchanged": "writes whose values Attentive holds already (not sent)",
    "writes_deferred": "a customer's later writes, sent after their first one's job settles",
    "writes_quarantined": "writes that can never be sent as they are",
    "records_sent": "records submitted in bulk jobs",
    "rejected_on_submit": "records Attentive refused when submitted (quarantined)",
    "held_back": "records left out by their state: carried, taken over, or queued behind a write",
    "uncertain_submissions": "records whose request may have reached Attentive unanswered",
    "bulk_requests": "bulk requests made (a refused request is split to find the bad record)",
    "jobs": "bulk jobs Attentive accepted",
    "jobs_settled": "jobs whose results were applied (this run's and earlier runs')",
    "jobs_unfinished": "jobs still running at the deadline (a later run settles them)",
    "accepted": "records Attentive applied",
    "rejected": "records Attentive refused (quarantined with its message)",
    "retried": "records sent back to their queue for another attempt",
    "parked": "records out of attempts (quarantined as retries_exhausted)",
    "profile_writes_queued": "loyalty profile writes queued for customers with events",
    "accepted_events": "custom events Attentive accepted",
    "rejected_events": "custom events Attentive refused (quarantined)",
    "retry_later": "custom events to try again later",
    "retries_exhausted": "custom events out of attempts (quarantined)",
    "not_selected": "events the merchant's selection leaves out",
    "stale_sent": "events older than 12 hours, sent (they trigger no journey)",
    "stale_skipped": "events older than 12 hours, skipped by the stale policy",
    "dropped": "events the contract says trigger nothing (e.g. no supported reward)",
    "baseline_customers": "customers recorded in the first run's baseline (nothing sent)",
    "changed_customers": "customers whose tier, segment or balance changed since the last run",
    "cooldown_suppressed": "reward_available / approaching_tier held back: sent within 7 days",
    "derived_not_selected": "derived events the merchant's selection leaves out (not queued)",
    "derived": "events derived from the tables this run",
    "queued": "derived events queued",
    "queued_before": "derived events an earlier run had queued already",
    "invalid_emails_dropped": "invalid emails left out of records sent to another identifier",
    "events_external_ids_only": "events Attentive accepted for users with no phone or email",
    "jobs_results_unreadable": "completed jobs whose results file could not be read at all",
    "assumed_applied": "records of those jobs counted as applied (not sent again)",
}

# One line that tells the reader what a non-zero count means for them, beyond its meaning.
EXPLANATIONS: dict[str, str] = {
    "invalid_emails_dropped": (
        "{n} record(s) had an email that is not an address: it was left out and the record "
        "went to its other identifiers; `quarantine list --reason invalid_email` shows the "
        "records that had nothing else"
    ),
    "events_external_ids_only": (
        "{n} event(s) went to users known only by clientUserId or custom identifiers: "
        "Attentive ties such an event to a person only once those identifiers were linked to "
        "a phone or email (by a bulk attribute write or an identify call carrying both); "
        "until then it reaches no one"
    ),
    "assumed_applied": (
        "{n} record(s) were in completed jobs whose results file could not be read: they are "
        "counted as applied and not sent again (Attentive completed the job), and the ledger "
        "does not assume their values, so a later change sends them again"
    ),
}


@dataclass
class Report:
    """Named counts plus the identities they must satisfy (``total = part + part + ...``)."""

    title: str
    counts: Counter[str] = field(default_factory=Counter)
    identities: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, name: str, amount: int = 1) -> None:
        self.counts[name] += amount

    def merge(self, other: Report) -> None:
        self.counts.update(other.counts)
        self.notes.extend(other.notes)
        for total, parts in other.identities:
            self.must_add_up(total, *parts)

    def must_add_up(self, total: str, *parts: str) -> None:
        if (total, parts) not in self.identities:
            self.identities.append((total, parts))

    def problems(self) -> list[str]:
        """Identities that do not hold; an empty list means every count is accounted for."""
        out = []
        for total, parts in self.identities:
            summed = sum(self.counts[p] for p in parts)
            if not self._holds(total, parts):
                out.append(f"{total} = {self.counts[total]} but {' + '.join(parts)} = {summed}")
        return out

    def _holds(self, total: str, parts: tuple[str, ...]) -> bool:
        return self.counts[total] == sum(self.counts[p] for p in parts)

    def explanations(self) -> list[str]:
        """What the non-zero counts that need one mean for the reader, one line each."""
        return [
            text.format(n=f"{self.counts[name]:,}")
            for name, text in EXPLANATIONS.items()
            if self.counts[name]
        ]

    def summary(self) -> str:
        """One line for a log: the counts that are not zero, in pipeline order, then what
        the counts that need explaining mean."""
        shown = [f"{name} {value:,}" for name, value in self.counts.items() if value]
        line = f"{self.title}: {', '.join(shown) or 'nothing to do'}"
        return ". ".join([line, *self.explanations()])

    def to_markdown(self) -> str:
        lines = [f"# {self.title}", "", "| count | value | meaning |", "|---|---:|---|"]
        lines += [
            f"| {name} | {value:,} | {MEANINGS.get(name, '')} |"
            for name, value in self.counts.items()
        ]
        if self.identities:
            lines += ["", "**Counts that add up**", ""]
            for total, parts in self.identities:
                mark = "ok" if self._holds(total, parts) else "MISMATCH"
                lines.append(f"- {total} = {' + '.join(parts)}: {mark}")
        notes = [*self.notes, *self.explanations()]
        if notes:
            lines += ["", *[f"- {note}" for note in notes]]
        return "\n".join(lines)


def add_dropped_emails(report: Report, batches: Iterable[Batch]) -> None:
    """Count the records about to be sent without the invalid email their source holds."""
    report.add("invalid_emails_dropped", sum(batch.dropped_emails for batch in batches))
