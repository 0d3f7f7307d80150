"""The custom-event delivery task: one chunk of events, sent with bounded concurrency."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from attentive_sync.domain.events import CustomEvent
from attentive_sync.engine.loyalty.relay import Delivery, deliver
from attentive_sync.engine.runtime import shared_runtime


@task(name="send-custom-events", cache_policy=NO_CACHE)
def send_custom_events(sends: list[tuple[int, CustomEvent]], concurrency: int) -> Delivery:
    """Errors are sorted per event inside (accepted, rejected, retry later), so the task
    itself fails only when the run must stop (a revoked key, a missing scope)."""
    return deliver(shared_runtime(), sends, concurrency)
