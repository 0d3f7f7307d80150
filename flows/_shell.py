"""What every flow shares: Prefect-backed collaborators for the engine's run functions."""

from __future__ import annotations

import time
from typing import Any, cast
from uuid import UUID

from prefect import get_run_logger
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    update_progress_artifact,
)
from prefect.futures import PrefectFuture
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner
from prefect.utilities.annotations import quote

from attentive_sync.domain.events import CustomEvent
from attentive_sync.engine.delivery.collaborators import Progress, SendMany
from attentive_sync.engine.delivery.submit import Batch, SendResult
from attentive_sync.engine.loyalty.relay import DeliverMany, Delivery, chunk_concurrency
from attentive_sync.engine.report import Report
from attentive_sync.tasks.bulk import bulk_send
from attentive_sync.tasks.events import send_custom_events


def thread_pool(max_workers: int) -> TaskRunner[PrefectFuture[Any]]:
    """A ``ThreadPoolTaskRunner`` of at most ``max_workers`` threads, as ``@flow`` takes it.

    ``TaskRunner`` is invariant in its future type, so ``@flow``'s ``TaskRunner[PrefectFuture]``
    does not accept a ``ThreadPoolTaskRunner`` without a cast (Prefect casts its own default).
    """
    return cast("TaskRunner[PrefectFuture[Any]]", ThreadPoolTaskRunner(max_workers=max_workers))


def prefect_sender(owner: str) -> SendMany:
    """Send a page's batches as one ``bulk-send`` task run: the batches go concurrently
    inside it, and one task run per page, not per batch, keeps Prefect's overhead small."""

    def send_many(batches: list[Batch], kind: str) -> list[SendResult]:
        # quote(): Prefect would otherwise walk every user of every batch looking for
        # futures to track, which costs more CPU than the sending itself.
        return bulk_send(quote(batches), kind, owner) if batches else []

    return send_many


def prefect_deliverer(concurrency: int) -> DeliverMany:
    """Deliver chunks of custom events as ``send-custom-events`` task runs, in order; the
    relay's chunks going out side by side together keep ``concurrency`` requests in flight."""
    per_chunk = chunk_concurrency(concurrency)

    def deliver_many(chunks: list[list[tuple[int, CustomEvent]]]) -> list[Delivery]:
        return [send_custom_events(quote(chunk), per_chunk) for chunk in chunks]

    return deliver_many


def progress_artifact(key: str, description: str) -> Progress:
    """A progress bar in the Prefect UI, updated at most once a second, and a log line with
    the rate and the time left at most every ``PROGRESS_LOG_SECONDS``."""
    # Called from a sync flow, so Prefect's sync/async dispatch returns the id, not a coroutine.
    artifact_id = cast(UUID, create_progress_artifact(0.0, key=key, description=description))
    logger = get_run_logger()
    started = time.monotonic()
    last_update, last_log = [0.0], [started]

    def update(fraction: float, text: str) -> None:
        now = time.monotonic()
        if fraction >= 1.0 or now - last_update[0] >= 1.0:
            last_update[0] = now
            update_progress_artifact(artifact_id, progress=round(100 * fraction, 1))
        if fraction >= 1.0 or now - last_log[0] >= PROGRESS_LOG_SECONDS:
            last_log[0] = now
            logger.info("%s: %s", description, progress_line(fraction, now - started, text))

    return update


PROGRESS_LOG_SECONDS = 10.0


def progress_line(fraction: float, elapsed: float, text: str) -> str:
    """``42.0% done (vip), 1.3%/s, about 45s left``."""
    fraction = max(0.0, min(1.0, fraction))
    rate = fraction / elapsed if elapsed > 0 else 0.0
    where = f" ({text})" if text else ""
    if fraction >= 1.0:
        return f"done{where} in {_duration(elapsed)}"
    left = f"about {_duration((1.0 - fraction) / rate)} left" if rate > 0 else "time left unknown"
    return f"{100 * fraction:.1f}% done{where}, {100 * rate:.2f}%/s, {left}"


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def publish(report: Report, key: str) -> dict[str, int]:
    """Leave the report in the UI; a count that does not add up is logged as an error."""
    logger = get_run_logger()
    for problem in report.problems():
        logger.error("report counts do not add up: %s", problem)
    create_markdown_artifact(report.to_markdown(), key=key, description=report.title)
    logger.info(report.summary())
    return dict(report.counts)
