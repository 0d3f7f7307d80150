"""Loading loyalty events from a JSON Lines file: one webhook envelope per line.

A file from an export or a replay is rarely perfect. Each bad line is reported with its
number and skipped; the good lines are stored (in batches, idempotently, so running the
same file twice stores nothing new). An id already used for another event (in the store
or earlier in the file) is a bad line too: its event is never silently dropped.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import timezone
from itertools import islice
from pathlib import Path

from attentive_sync.intake.payloads import PayloadError, parse_event
from attentive_sync.store.queue import Queue
from attentive_sync.store.records import NewEvent, QueuedEvent

EventQueue = Queue[NewEvent, QueuedEvent]

BATCH = 500


@dataclass(frozen=True)
class InvalidLine:
    line_number: int
    reason: str


@dataclass
class IngestReport:
    stored: int = 0
    duplicates: int = 0
    invalid: list[InvalidLine] = field(default_factory=list)


def _valid_events(lines: Iterable[str], report: IngestReport) -> Iterator[tuple[int, NewEvent]]:
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            yield number, parse_event(line)
        except PayloadError as exc:
            report.invalid.append(InvalidLine(number, str(exc)))


def _content(event: NewEvent | QueuedEvent) -> tuple[object, ...]:
    moment = event.occurred_at.astimezone(timezone.utc)
    return (event.topic, event.customer_id, moment, json.dumps(event.payload, sort_keys=True))


def ingest_lines(events: EventQueue, lines: Iterable[str]) -> IngestReport:
    """Store every valid envelope in ``lines``; returns the counts and the rejected lines."""
    report = IngestReport()
    seen: dict[str, tuple[object, ...]] = {}
    valid = _valid_events(lines, report)
    while batch := list(islice(valid, BATCH)):
        stored = events.by_keys([event.event_id for _, event in batch])
        keep = []
        for number, event in batch:
            content = _content(event)
            earlier = stored.get(event.event_id)
            first = seen.setdefault(event.event_id, _content(earlier) if earlier else content)
            if first != content:
                reason = f"id {event.event_id!r} was already used for another event"
                report.invalid.append(InvalidLine(number, reason))
            else:
                keep.append(event)
        result = events.enqueue(keep)
        report.stored += result.stored
        report.duplicates += result.duplicates
    return report


def ingest_jsonl(events: EventQueue, path: Path) -> IngestReport:
    """``ingest_lines`` over a file, read lazily so its size does not matter."""
    with path.open(encoding="utf-8") as lines:
        return ingest_lines(events, lines)
