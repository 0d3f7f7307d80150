"""The soak's worker processes, and every call the soak makes into the engine and the store.

One worker runs one flow's work over and over (``python -m benchmarks._soak_worker --flow
incremental ...``) until the soak tells it to stop, and may be SIGKILLed at any moment.

The engine and the store are being reorganised: every engine or store import and call of
the soak lives in the adapter functions below, one per flow plus three for the store, so
re-pointing the soak at new module names touches this block only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from attentive_sync.domain.export_config import ExportConfig
from attentive_sync.settings import DEMO_API_KEY, AttentiveSettings, SyncSettings

AUDIENCE = "soak_members"
CONFIG = ExportConfig(
    audiences=[AUDIENCE],
    identifier_mappings={"phone": "phone", "email": "email", "client_user_id": "clientUserId"},
)
SEND_WORKERS = 4
WAIT_SECONDS = 20.0  # a run waits this long for its jobs; a later run settles the rest
PAUSE_SECONDS = 0.5  # between two runs of one worker
FLOWS = ("backfill", "incremental", "relay")
# Scaled to the soak's minutes: uncertain submissions hold their customers longer than the
# emulator's slow jobs take (5 s), and records are retried within seconds, not an hour.
LIFECYCLE = {
    "uncertain_hold_seconds": 15.0,
    "retry_backoff_seconds": 1.0,
    "retry_backoff_cap_seconds": 10.0,
}


# ---------------------------------------------------------------------------------------
# Adapters: the only place the soak reaches into attentive_sync.engine and .store.
# ---------------------------------------------------------------------------------------


def settings_env(db_url: str, base_url: str, lease_seconds: float) -> dict[str, str]:
    """The settings a deployment would set, as environment variables (``--prefect`` mode)."""
    return {
        "ATTENTIVE_SYNC_DB_URL": db_url,
        "ATTENTIVE_SYNC_LEASE_SECONDS": str(lease_seconds),
        "ATTENTIVE_SYNC_POLL_INTERVAL_SECONDS": "0.5",
        **{f"ATTENTIVE_SYNC_{name.upper()}": str(value) for name, value in LIFECYCLE.items()},
        "ATTENTIVE_BASE_URL": base_url,
        "ATTENTIVE_API_KEY": DEMO_API_KEY,
        "ATTENTIVE_READ_TIMEOUT": "10",
        "ATTENTIVE_BACKOFF_CAP": "5",
    }


def open_runtime(db_url: str, base_url: str, lease_seconds: float) -> Any:
    """A runtime over one store (the source is the same database) and the emulator."""
    from attentive_sync.engine.runtime import build_runtime

    return build_runtime(
        SyncSettings(
            db_url=db_url,
            lease_seconds=lease_seconds,
            poll_interval_seconds=0.5,
            **LIFECYCLE,
        ),
        AttentiveSettings(
            api_key=SecretStr(DEMO_API_KEY), base_url=base_url, read_timeout=10.0, backoff_cap=5.0
        ),
    )


def backfill_once(runtime: Any, run_key: str) -> dict[str, int]:
    """One run of the audience backfill ``run_key`` (resumes it; settles earlier jobs).

    ``runtime`` is ``None`` in ``--prefect`` mode: the real flow runs, against PREFECT_API_URL.
    """
    if runtime is None:
        from attentive_sync.flows.audience import audience_backfill

        return dict(audience_backfill(config=CONFIG, run_key=run_key, wait_seconds=WAIT_SECONDS))
    from attentive_sync.engine.audience.export import run_backfill
    from attentive_sync.engine.delivery.collaborators import direct_waiter, thread_pool_sender

    owner = f"backfill:{run_key}:{os.getpid()}"
    sender = thread_pool_sender(runtime, owner, SEND_WORKERS)
    waiter = direct_waiter(runtime, WAIT_SECONDS, owner)
    report = run_backfill(runtime, CONFIG, run_key, sender, waiter)
    return dict(report.counts)


def incremental_once(runtime: Any, owner: str) -> dict[str, int]:
    """One run of the audience incremental: settle earlier jobs, send the queued deltas."""
    if runtime is None:
        from attentive_sync.flows.audience import audience_incremental

        return dict(audience_incremental(config=CONFIG, wait_seconds=WAIT_SECONDS))
    from attentive_sync.engine.audience.export import run_incremental
    from attentive_sync.engine.delivery.collaborators import direct_waiter, thread_pool_sender

    sender = thread_pool_sender(runtime, owner, SEND_WORKERS)
    waiter = direct_waiter(runtime, WAIT_SECONDS, owner)
    report = run_incremental(runtime, CONFIG, owner, sender, waiter)
    return dict(report.counts)


def relay_once(runtime: Any, owner: str) -> dict[str, int]:
    """One run of the loyalty events relay, profile attributes included."""
    from attentive_sync.engine.loyalty.relay import EventsConfig, run_relay, thread_deliverer

    cfg = EventsConfig(max_events_per_run=2000)
    if runtime is None:
        from attentive_sync.flows.loyalty import loyalty_events

        # As JSON, the way a deployment's parameter form passes it (see benchmarks/README.md).
        settings = cfg.model_dump(mode="json")
        return dict(loyalty_events(config=CONFIG, events=settings, wait_seconds=WAIT_SECONDS))
    from attentive_sync.engine.delivery.collaborators import direct_waiter, thread_pool_sender

    collaborators = (
        thread_deliverer(runtime, cfg.concurrency),
        thread_pool_sender(runtime, owner, SEND_WORKERS),
        direct_waiter(runtime, WAIT_SECONDS, owner),
    )
    report = run_relay(runtime, CONFIG, cfg, owner, collaborators)
    return dict(report.counts)


def sql_engine(db_url: str) -> Any:
    """An engine on the store's database as the store opens it (SQLite: WAL, busy timeout)."""
    from sqlalchemy.pool import NullPool

    from attentive_sync.store import make_engine

    return make_engine(db_url, poolclass=NullPool)


def init_store(db_url: str) -> None:
    """Create the state store's and the reference source's tables."""
    from attentive_sync.store import init_db

    init_db(db_url)


@dataclass(frozen=True)
class Delta:
    key: str
    customer_id: int
    action: str  # enter | exit
    occurred_at: datetime


@dataclass(frozen=True)
class Event:
    event_id: str
    topic: str
    customer_id: int
    occurred_at: datetime
    payload: dict[str, Any]


class Enqueuer:
    """The producer's way into the two queues (what the intake does on a webhook)."""

    def __init__(self, db_url: str) -> None:
        from attentive_sync.store import Store

        self._store = Store.from_url(db_url)

    def deltas(self, deltas: list[Delta]) -> int:
        from attentive_sync.store import NewDelta

        new = [
            NewDelta(AUDIENCE, d.customer_id, d.action, d.occurred_at, d.key)  # type: ignore[arg-type]
            for d in deltas
        ]
        return self._store.deltas.enqueue(new).stored

    def events(self, events: list[Event]) -> int:
        from attentive_sync.store import NewEvent

        new = [
            NewEvent(e.event_id, e.topic, e.customer_id, e.occurred_at, e.payload) for e in events
        ]
        return self._store.events.enqueue(new).stored

    def close(self) -> None:
        self._store.close()


def store_outcome(db_url: str) -> dict[str, Any]:
    """Where every queued row, recorded job and quarantine entry stands now.

    ``deltas`` / ``events``: row key -> state; ``unsettled_jobs`` by kind;
    ``quarantine``: open entries as (source kind, reason, customer id).
    """
    from sqlalchemy import text

    engine = sql_engine(db_url)
    try:
        with engine.connect() as conn:
            deltas = dict(conn.execute(text("SELECT delta_key, state FROM audience_deltas")).all())
            events = dict(conn.execute(text("SELECT event_id, state FROM loyalty_events")).all())
            writes = dict(conn.execute(text("SELECT write_key, state FROM attribute_writes")).all())
            unsettled = dict(
                conn.execute(
                    text("SELECT kind, count(*) FROM bulk_jobs WHERE NOT settled GROUP BY kind")
                ).all()
            )
            quarantine = [
                tuple(row)
                for row in conn.execute(
                    text(
                        "SELECT source_kind, reason_code, customer_id, source_ref FROM quarantine"
                        " WHERE replayed_at IS NULL"
                    )
                ).all()
            ]
    finally:
        engine.dispose()
    return {
        "deltas": deltas,
        "events": events,
        "writes": writes,
        "unsettled_jobs": unsettled,
        "quarantine": quarantine,
    }


# ---------------------------------------------------------------------------------------
# The worker loop.
# ---------------------------------------------------------------------------------------


def _log(record: dict[str, Any]) -> None:
    print(json.dumps({"t": round(time.time(), 3), "pid": os.getpid(), **record}), flush=True)


def _backfill_round(run_dir: Path) -> int:
    path = run_dir / "backfill_round"
    return int(path.read_text()) if path.exists() else 1


def _next_backfill_round(run_dir: Path, done: int) -> None:
    """Start a new backfill (a new run key) once one completes; atomic, so a kill is safe."""
    tmp = run_dir / f"backfill_round.{os.getpid()}"
    tmp.write_text(str(done + 1))
    tmp.replace(run_dir / "backfill_round")


def work(
    flow: str, db_url: str, base_url: str, run_dir: Path, lease_seconds: float, prefect: bool
) -> None:
    """Run ``flow`` until ``run_dir/stop`` exists; after ``run_dir/draining`` the backfill
    starts no new round but keeps running its last one (which settles its jobs).

    ``prefect``: run the real Prefect flow each time (settings from the environment, which
    the soak sets), instead of the engine's run function with thread-pool collaborators.
    """
    runtime = None if prefect else open_runtime(db_url, base_url, lease_seconds)
    owner = f"soak-{flow}-{os.getpid()}"
    while not (run_dir / "stop").exists():
        started = time.monotonic()
        try:
            if flow == "backfill":
                round_no = _backfill_round(run_dir)
                counts = backfill_once(runtime, f"soak-{round_no}")
                if not (run_dir / "draining").exists():
                    _next_backfill_round(run_dir, round_no)
            elif flow == "incremental":
                counts = incremental_once(runtime, owner)
            else:
                counts = relay_once(runtime, owner)
            if any(counts.values()):  # idle runs (nothing queued, nothing to settle) unlogged
                seconds = round(time.monotonic() - started, 2)
                _log({"flow": flow, "seconds": seconds, "counts": counts})
        except Exception as exc:  # a failed run is retried by the next one, as a schedule would
            _log({"flow": flow, "error": f"{type(exc).__name__}: {exc}"[:500]})
            traceback.print_exc(file=sys.stderr)
            time.sleep(1.0)
        time.sleep(PAUSE_SECONDS)
    if runtime is not None:
        runtime.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="one soak worker (started by benchmarks.soak)")
    parser.add_argument("--flow", choices=FLOWS, required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--run-dir", type=Path, required=True)
    parser.add_argument("--lease-seconds", type=float, default=30.0)
    parser.add_argument("--prefect", action="store_true", help="run the Prefect flows")
    args = parser.parse_args(argv)
    work(args.flow, args.db, args.base_url, args.run_dir, args.lease_seconds, args.prefect)
    return 0


if __name__ == "__main__":
    sys.exit(main())
