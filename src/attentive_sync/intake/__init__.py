"""The HTTP intake service and the JSON Lines event loader: ways for upstream systems to
put audience deltas and loyalty events into the engine's durable queues."""

from attentive_sync.intake.app import create_intake_app
from attentive_sync.intake.ingest import IngestReport, InvalidLine, ingest_jsonl, ingest_lines
from attentive_sync.intake.loyaltylion import LoyaltyLionAdapter
from attentive_sync.intake.payloads import PayloadError, parse_deltas, parse_event
from attentive_sync.intake.signing import SIGNATURE_HEADER, sign, signed_headers, verify

__all__ = [
    "SIGNATURE_HEADER",
    "IngestReport",
    "InvalidLine",
    "LoyaltyLionAdapter",
    "PayloadError",
    "create_intake_app",
    "ingest_jsonl",
    "ingest_lines",
    "parse_deltas",
    "parse_event",
    "sign",
    "signed_headers",
    "verify",
]
