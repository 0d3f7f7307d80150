"""Benchmark: relay N queued loyalty events against the emulator at its 150/s events limit.

    .venv/bin/python -m benchmarks.relay                          # 50,000 events, engine
    .venv/bin/python -m benchmarks.relay --events 5000 --mode both

Custom events have no bulk endpoint: every event is one request, so the relay can go no
faster than the 150 requests/s Attentive allows per key. The source is a seeded program of
20,000 customers (cached under ``.bench/``); the events, of all thirteen topics with valid
payloads and recent timestamps, go to customers with usable identifiers and are queued on
a fresh copy before the measured child starts. The emulator runs in its own process.
Target: at least 90 % of the limit, with no 429 storm. 50,000 events take about 6 minutes.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import time
from contextlib import closing
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from attentive_sync.domain.loyalty.selection import EventSelection
from attentive_sync.engine.delivery.collaborators import direct_waiter, thread_pool_sender
from attentive_sync.engine.loyalty.relay import EventsConfig, run_relay, thread_deliverer
from attentive_sync.engine.runtime import build_runtime, shared_runtime
from attentive_sync.settings import DEMO_API_KEY, AttentiveSettings, SyncSettings
from benchmarks._common import (
    BENCH_DIR,
    BenchError,
    Emulator,
    add_common_arguments,
    child_env,
    console,
    endpoint_counts,
    fresh_copy,
    prefect_run_summary,
    remove_database,
    run_child,
    run_in_child,
    show,
    show_profile,
    sqlite_url,
)
from benchmarks._loyalty_data import CONFIG, build_source, enqueue_events

EVENTS_LIMIT = 150  # custom events per second, enforced by the emulator
JOB_DELAY = 0.5


def events_config(events: int) -> EventsConfig:
    """Every topic is sent (deprecated ones too), and one run takes the whole queue."""
    return EventsConfig(
        selection=EventSelection(include_deprecated=True), max_events_per_run=events
    )


def run_engine(db_url: str, base_url: str, events: int) -> dict[str, Any]:
    """run_relay with the thread deliverer; the profile updates at the end are timed apart."""
    runtime = build_runtime(
        SyncSettings(db_url=db_url),
        AttentiveSettings(api_key=SecretStr(DEMO_API_KEY), base_url=base_url),
    )
    cfg = events_config(events)
    sender, marks = thread_pool_sender(runtime, "bench", 8), {}
    deliverer = thread_deliverer(runtime, cfg.concurrency)

    def deliver_many(chunks: list) -> list:
        marks.setdefault("first_sent", time.perf_counter())
        try:
            return deliverer(chunks)
        finally:
            marks["last_back"] = time.perf_counter()

    def send_many(batches: list, kind: str) -> list:
        marks.setdefault("profiles", time.perf_counter())
        return sender(batches, kind)

    # The events phase ends with the last event's ack (the profile writes follow it).
    queue = runtime.store.events
    ack = queue.ack

    def timed_ack(*args: Any, **kwargs: Any) -> Any:
        try:
            return ack(*args, **kwargs)
        finally:
            marks["acked"] = time.perf_counter()

    queue.ack = timed_ack  # type: ignore[method-assign]
    started = time.perf_counter()
    collaborators = (deliver_many, send_many, direct_waiter(runtime, 120.0))
    report = run_relay(runtime, CONFIG, cfg, "bench", collaborators)
    ended = time.perf_counter()
    result = {
        "wall_seconds": ended - started,
        "events_seconds": marks.get("acked", ended) - started,
        "before_first_send": marks.get("first_sent", started) - started,
        "sending_seconds": marks.get("last_back", started) - marks.get("first_sent", started),
        "counts": dict(report.counts),
        "client_retries": runtime.client.retries,
    }
    runtime.close()
    return result


def run_prefect(db_url: str, base_url: str, events: int) -> dict[str, Any]:
    """The loyalty-events flow in this process, against Prefect's API (ephemeral if unset)."""
    os.environ.update(
        ATTENTIVE_SYNC_DB_URL=db_url, ATTENTIVE_BASE_URL=base_url, ATTENTIVE_API_KEY=DEMO_API_KEY
    )
    # Imported here: the engine mode never loads Prefect.
    from attentive_sync.flows.loyalty import loyalty_events

    started = time.perf_counter()
    # Given as JSON, the way a deployment's parameter form passes it.
    settings = events_config(events).model_dump(mode="json")
    state = loyalty_events(config=CONFIG, events=settings, return_state=True)
    ended = time.perf_counter()
    run_id = state.state_details.flow_run_id
    summary = prefect_run_summary(run_id, "send-custom-events", "wait-for-bulk-jobs")
    return {
        "wall_seconds": ended - started,
        "events_seconds": summary.pop("submit_seconds") or summary["flow_seconds"],
        "counts": state.result(),
        "client_retries": shared_runtime().client.retries,
        **summary,
    }


def measure(mode: str, events: int, template: Path, profile: bool, timeout: float) -> dict:
    db = fresh_copy(template, f"relay-run-{mode}.db")
    queued = enqueue_events(sqlite_url(db), events)
    args = ["--child", mode, "--db", str(db), "--events", str(events)]
    with Emulator(JOB_DELAY, BENCH_DIR / f"relay-{mode}-emulator.log") as emulator:
        args += ["--base-url", emulator.base_url, *(["--profile"] if profile else [])]
        log = BENCH_DIR / f"relay-{mode}.log"
        console.print(f"{time.strftime('%X')} {mode}: {queued:,} events queued (log: {log})")
        result = run_child("benchmarks.relay", args, child_env(), timeout, log)
        stats = emulator.stats()
        result["emulator_rss_mb"] = emulator.peak_rss_mb()
        result["emulator_cpu_seconds"] = emulator.cpu_seconds()
    with closing(sqlite3.connect(db)) as conn:
        states = dict(conn.execute("SELECT state, count(*) FROM loyalty_events GROUP BY 1"))
    remove_database(db)
    return result | {
        "queued": queued,
        "queue_states": states,
        "event_answers": endpoint_counts(stats, "custom_events"),
        "throttled": stats["throttled"],
        "emulator_events": stats["events"],
        "duplicate_events": stats["duplicate_events"],
    }


def _split_rows(r: dict[str, Any]) -> list[tuple[str, object]]:
    """How the events phase divides: the first lease, the sending (leases planned and acks
    applied beside it), and the acks after the last answer."""
    if "sending_seconds" not in r:
        return []
    sending = r["sending_seconds"]
    after = r["events_seconds"] - r["before_first_send"] - sending
    rate = r["counts"].get("accepted_events", 0) / sending if sending else 0.0
    return [
        ("  of which before the first send", f"{r['before_first_send']:.1f} s"),
        ("  of which sending (first out to last back)",
         f"{sending:.1f} s, {rate:,.1f}/s ({rate / EVENTS_LIMIT:.0%})"),
        ("  of which acking after the last answer", f"{after:.1f} s"),
    ]  # fmt: skip


def report(mode: str, r: dict[str, Any]) -> None:
    counts, answers = r["counts"], r["event_answers"]
    rate = counts.get("accepted_events", 0) / r["events_seconds"]
    rows: list[tuple[str, object]] = [
        ("events queued", r["queued"]),
        ("wall time of the child", f"{r['wall_seconds']:.1f} s"),
    ]
    if "flow_seconds" in r:
        rows.append(("flow run time (API start..end)", f"{r['flow_seconds']:.1f} s"))
    rows += [
        ("events phase (lease, map, send)", f"{r['events_seconds']:.1f} s"),
        ("events/s in events phase", f"{rate:,.1f} ({rate / EVENTS_LIMIT:.0%} of the 150/s limit)"),
        *_split_rows(r),
        ("profiles phase (bulk attributes)",
         f"{(r.get('flow_seconds') or r['wall_seconds']) - r['events_seconds']:.1f} s"
         f" for {counts.get('profile_writes_queued', 0):,} profile writes"),
        ("accepted / rejected / retry later",
         f"{counts.get('accepted_events', 0):,} / {counts.get('rejected_events', 0):,} / "
         f"{counts.get('retry_later', 0):,}"),
        ("custom-event answers", ", ".join(f"{k}: {v:,}" for k, v in sorted(answers.items()))),
        ("429s received: events / all", f"{answers.get('429', 0):,} / {r['throttled']:,}"),
        ("client retries", r["client_retries"]),
        ("emulator events stored (duplicates)",
         f"{r['emulator_events']:,} ({r['duplicate_events']:,})"),
        ("queue rows by state", ", ".join(f"{k} {v:,}" for k, v in r["queue_states"].items())),
        ("CPU engine / emulator (user + sys)",
         f"{r['cpu_seconds']:.1f} s / {r['emulator_cpu_seconds']:.1f} s"),
        ("peak RSS engine", f"{r['peak_rss_mb']:.0f} MB"),
        ("peak RSS emulator", f"{r['emulator_rss_mb']:.0f} MB"),
    ]  # fmt: skip
    if "task_runs" in r:
        rows.append(("send-custom-events task runs (not completed)",
                     f"{r['task_runs']:,} ({r['task_runs_not_completed']:,})"))  # fmt: skip
    show(f"Loyalty relay, {mode} mode", rows)
    if r.get("profile"):
        show_profile(r["profile"])


def child(args: argparse.Namespace) -> None:
    db_url = sqlite_url(Path(args.db))
    run = run_engine if args.child == "engine" else run_prefect
    run_in_child(lambda: run(db_url, args.base_url, args.events), args.profile)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=50_000)
    add_common_arguments(parser, default_mode="engine")
    args = parser.parse_args(argv)
    if args.events < 1:
        parser.error("--events must be at least 1")
    if args.child:
        child(args)
        return 0
    modes = ("engine", "prefect") if args.mode == "both" else (args.mode,)
    timeout = args.timeout or 300 + 2 * args.events / EVENTS_LIMIT
    try:
        template = build_source()
        for mode in modes:
            report(mode, measure(mode, args.events, template, args.profile, timeout))
    except BenchError as exc:
        console.print(f"[red]{exc}[/red]")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
