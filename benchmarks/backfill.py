"""Benchmark: the audience backfill of N members against the emulator at 100 bulk requests/s.

    .venv/bin/python -m benchmarks.backfill                          # 1,000,000 members, both modes
    .venv/bin/python -m benchmarks.backfill --members 100000 --mode engine
    .venv/bin/python -m benchmarks.backfill --members 100000 --mode prefect --profile

The source holds N customers, all members of one audience; 1 in 100 has no identifier at
all, so the quarantine path runs too. It is built once with ``executemany`` and cached
under ``.bench/``; each run works on a fresh copy, so the state tables start empty. The
emulator (job delay 0.5 s, its 100/s bulk limit enforced) runs in its own process and each
mode in a child process. The submit phase can go no faster than N / 256 / 100 seconds:
its ratio to that floor is the figure to watch (target: at least 80 % of the ceiling).
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

from attentive_sync.engine.audience.export import run_backfill
from attentive_sync.engine.delivery.collaborators import direct_waiter, thread_pool_sender
from attentive_sync.engine.runtime import build_runtime, shared_runtime
from attentive_sync.settings import DEMO_API_KEY, AttentiveSettings, SyncSettings
from benchmarks._audience_data import AUDIENCE, CONFIG, build_source, valid_members
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
    show_stages,
    sqlite_url,
)

JOB_DELAY = 0.5
BULK_LIMIT = 100  # bulk submits per second, enforced by the emulator
USERS_PER_REQUEST = 256
SEND_WORKERS = 8


def run_engine(db_url: str, base_url: str, deadline: float) -> dict[str, Any]:
    """run_backfill with the thread-pool sender and the direct waiter, phases timed."""
    runtime = build_runtime(
        SyncSettings(db_url=db_url),
        AttentiveSettings(api_key=SecretStr(DEMO_API_KEY), base_url=base_url),
    )
    waiter, marks = direct_waiter(runtime, deadline), {}

    def wait(job_ids: list[str]) -> Any:
        marks["wait"], marks["wait_cpu"] = time.perf_counter(), time.process_time()
        return waiter(job_ids)

    started, started_cpu = time.perf_counter(), time.process_time()
    report = run_backfill(
        runtime, CONFIG, "bench", thread_pool_sender(runtime, "bench", SEND_WORKERS), wait,
        _progress_printer(),
    )  # fmt: skip
    ended = time.perf_counter()
    result = {
        "wall_seconds": ended - started,
        "submit_seconds": marks["wait"] - started,
        "submit_cpu_seconds": marks["wait_cpu"] - started_cpu,
        "counts": dict(report.counts),
        "problems": report.problems(),
        "client_requests": runtime.client.requests_sent,
        "client_retries": runtime.client.retries,
    }
    runtime.close()
    return result


def run_prefect(db_url: str, base_url: str, deadline: float) -> dict[str, Any]:
    """The audience-backfill flow in this process, against Prefect's API (ephemeral if unset)."""
    os.environ.update(
        ATTENTIVE_SYNC_DB_URL=db_url, ATTENTIVE_BASE_URL=base_url, ATTENTIVE_API_KEY=DEMO_API_KEY
    )
    # Imported here: the engine mode never loads Prefect.
    from attentive_sync.flows.audience import audience_backfill

    started = time.perf_counter()
    state = audience_backfill(
        config=CONFIG, run_key="bench", wait_seconds=deadline, return_state=True
    )
    ended = time.perf_counter()
    run_id = state.state_details.flow_run_id
    summary = prefect_run_summary(run_id, "bulk-send", "wait-for-bulk-jobs")
    client = shared_runtime().client
    return {
        "wall_seconds": ended - started,
        "counts": state.result(),
        "problems": [],
        "client_requests": client.requests_sent,
        "client_retries": client.retries,
        **summary,
    }


def _progress_printer():
    last = [0.0]

    def progress(fraction: float, audience: str) -> None:
        if time.monotonic() - last[0] >= 5 or fraction >= 1:
            last[0] = time.monotonic()
            print(f"{time.strftime('%X')} read {fraction:.0%} of {audience}", file=sys.stderr)

    return progress


def outcomes(db: Path) -> dict[str, Any]:
    """What the state store holds after the run: accepted members, quarantine, open jobs."""
    with closing(sqlite3.connect(db)) as conn:
        accepted = conn.execute(
            "SELECT count(*) FROM accepted_attributes WHERE name = ?", (AUDIENCE,)
        ).fetchone()[0]
        reasons = dict(conn.execute("SELECT reason_code, count(*) FROM quarantine GROUP BY 1"))
        unsettled = conn.execute("SELECT count(*) FROM bulk_jobs WHERE NOT settled").fetchone()[0]
    return {"accepted_in_store": accepted, "quarantine": reasons, "unsettled_jobs": unsettled}


def measure(mode: str, members: int, template: Path, profile: bool, timeout: float) -> dict:
    db = fresh_copy(template, f"backfill-run-{mode}.db")
    args = ["--child", mode, "--db", str(db), "--members", str(members)]
    with Emulator(JOB_DELAY, BENCH_DIR / f"backfill-{mode}-emulator.log") as emulator:
        args += ["--base-url", emulator.base_url, *(["--profile"] if profile else [])]
        log = BENCH_DIR / f"backfill-{mode}.log"
        console.print(f"{time.strftime('%X')} {mode}: {members:,} members (log: {log})")
        load = os.getloadavg()[0]
        result = run_child("benchmarks.backfill", args, child_env(), timeout, log)
        result["load"] = f"{load:.2f} / {os.getloadavg()[0]:.2f}"
        stats = emulator.stats()
        result["emulator_rss_mb"] = emulator.peak_rss_mb()
        result["emulator_cpu_seconds"] = emulator.cpu_seconds()
    result["submits"] = endpoint_counts(stats, "bulk_user_attributes")
    result["status_reads"] = endpoint_counts(stats, "bulk_job_status")
    result["result_reads"] = endpoint_counts(stats, "bulk_job_results")
    result["emulator_requests"], result["throttled"] = stats["requests"], stats["throttled"]
    result["emulator_users"] = stats["users"]
    result |= outcomes(db)
    remove_database(db)
    return result


def _sum(counts: dict[str, int]) -> int:
    return sum(counts.values())


def _cpu_row(r: dict[str, Any], members: int) -> list[tuple[str, object]]:
    """CPU burnt per member while submitting, by the engine's process (what caps the submit
    rate) and by the Prefect server it talks to (the ephemeral one is a child process)."""
    cpu = r.get("submit_cpu_seconds")
    if cpu is None:
        return []
    rows: list[tuple[str, object]] = [
        (
            "submit-phase CPU, engine process",
            f"{cpu:.1f} s ({1e6 * cpu / members:.1f} us per member)",
        )
    ]
    server = r.get("submit_server_cpu_seconds")
    if server:
        rows.append(
            (
                "submit-phase CPU, Prefect server",
                f"{server:.1f} s ({1e6 * server / members:.1f} us per member)",
            )
        )
    return rows


def report(mode: str, members: int, r: dict[str, Any]) -> None:
    floor = members / USERS_PER_REQUEST / BULK_LIMIT
    submit, flow = r.get("submit_seconds"), r.get("flow_seconds") or r["wall_seconds"]
    valid, counts = valid_members(members), r["counts"]
    rows: list[tuple[str, object]] = [
        ("members (valid)", f"{members:,} ({valid:,})"),
        ("wall time of the child", f"{r['wall_seconds']:.1f} s"),
    ]
    if "flow_seconds" in r:
        rows.append(("flow run time (API start..end)", f"{flow:.1f} s"))
    rows.append(("members/s end to end", f"{members / flow:,.0f}"))
    if submit:
        rows += [
            ("submit phase", f"{submit:.1f} s"),
            ("rate-limit floor N/256/100", f"{floor:.1f} s ({floor / submit:.0%} of ceiling)"),
            ("members/s in submit phase", f"{members / submit:,.0f}"),
            *_cpu_row(r, members),
            ("wait + settle phase", f"{flow - submit:.1f} s"),
        ]
    throttled = {n: r[n].get("429", 0) for n in ("submits", "status_reads", "result_reads")}
    rows += [
        ("CPU engine / Prefect server / emulator (user + sys)",
         f"{r['cpu_seconds']:.1f} s / {r.get('server_cpu_seconds', 0):.1f} s"
         f" / {r['emulator_cpu_seconds']:.1f} s"),
        ("peak RSS engine", f"{r['peak_rss_mb']:.0f} MB"),
        ("peak RSS emulator", f"{r['emulator_rss_mb']:.0f} MB"),
        ("requests (emulator / client)", f"{r['emulator_requests']:,} / {r['client_requests']:,}"),
        ("bulk submits, status reads, result reads",
         " / ".join(f"{_sum(r[n]):,}" for n in throttled)),
        ("429s received: all (submit/status/results)",
         f"{r['throttled']:,} ({' / '.join(f'{v:,}' for v in throttled.values())})"),
        ("client retries", r["client_retries"]),
        ("accepted: report / store / emulator users",
         f"{counts.get('accepted', 0):,} / {r['accepted_in_store']:,} / {r['emulator_users']:,}"),
        ("quarantined", ", ".join(f"{k} {v:,}" for k, v in r["quarantine"].items()) or "0"),
        ("jobs unsettled", r["unsettled_jobs"]),
        ("every valid member accepted", "yes" if r["accepted_in_store"] == valid else "NO"),
    ]  # fmt: skip
    if "task_runs" in r:
        rows.append(("bulk-send task runs (not completed)",
                     f"{r['task_runs']:,} ({r['task_runs_not_completed']:,})"))  # fmt: skip
    rows.append(("load average at start / end", r["load"]))
    show(f"Backfill, {mode} mode", rows)
    if r.get("stages"):
        show_stages(r["stages"], members)
    if r.get("profile"):
        show_profile(r["profile"])


def child(args: argparse.Namespace) -> None:
    db_url = sqlite_url(Path(args.db))
    deadline = max(120.0, 3 * args.members / USERS_PER_REQUEST / BULK_LIMIT + 60)
    run = run_engine if args.child == "engine" else run_prefect
    run_in_child(lambda: run(db_url, args.base_url, deadline), args.profile)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=1_000_000)
    add_common_arguments(parser, default_mode="both")
    args = parser.parse_args(argv)
    if args.members < USERS_PER_REQUEST:
        parser.error(f"--members must be at least {USERS_PER_REQUEST}")
    if args.child:
        child(args)
        return 0
    modes = ("engine", "prefect") if args.mode == "both" else (args.mode,)
    timeout = args.timeout or 300 + 0.0006 * args.members
    try:
        template = build_source(args.members)
        for mode in modes:
            report(mode, args.members, measure(mode, args.members, template, args.profile, timeout))
    except BenchError as exc:
        console.print(f"[red]{exc}[/red]")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
