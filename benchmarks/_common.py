"""What the audience-backfill and loyalty-relay benchmarks share.

The emulator runs in its own process, so its request handling never competes with the
engine for the GIL, and each measured mode runs in a child process, so the peak RSS it
reports is the engine's own and not the data builder's or a previous mode's.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import psutil
from rich.console import Console
from rich.table import Table

from attentive_sync.store.db import MIGRATIONS_DIR
from benchmarks._sampler import StackSampler

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / ".bench"
RESULT_MARK = "BENCH-RESULT "
console = Console(stderr=True)


class BenchError(RuntimeError):
    """A benchmark could not produce its figures; the message says why."""


def fresh_copy(template: Path, name: str) -> Path:
    """A copy of a cached database, so the state tables start empty on every run."""
    target = BENCH_DIR / name
    remove_database(target)
    shutil.copyfile(template, target)
    return target


def schema_fingerprint() -> str:
    """A short hash of the store's migrations: a cached database is rebuilt when they change.

    The head revision alone is not enough while a migration is still being edited in place.
    """
    digest = hashlib.sha256()
    for path in sorted(MIGRATIONS_DIR.rglob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:10]


def remove_database(path: Path) -> None:
    """Drop a run's copy once its figures are read (a failed run's copy stays for a look)."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def peak_rss_mb(pid: int | str = "self") -> float:
    """The high-water mark of a process's resident memory (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise BenchError(f"no VmHWM for process {pid}: peak RSS needs Linux /proc")


RESERVED_PORTS = frozenset({4200, 8000})  # Prefect's and the intake's defaults stay free


def free_port() -> int:
    """A free loopback port, never one of the project's default ports."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in RESERVED_PORTS:
            return port


class Emulator:
    """``attentive-sync emulator`` in a child process, with its rate limits enforced.

    ``options`` are further command-line options (faults, a seed) passed as they are.
    """

    def __init__(self, job_delay: float, log: Path, options: Sequence[str] = ()) -> None:
        self.job_delay = job_delay
        self.log = log
        self.options = list(options)
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Emulator:
        cli = Path(sys.executable).with_name("attentive-sync")
        command = [str(cli), "emulator", "--port", str(self.port)]
        command += ["--job-delay", str(self.job_delay), *self.options]
        with self.log.open("wb") as out:
            self._proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise BenchError(f"the emulator exited at start; see {self.log}")
            try:
                self.stats()
                return self
            except httpx.TransportError:
                time.sleep(0.2)
        self.__exit__(None, None, None)
        raise BenchError(f"the emulator did not answer within 30 s; see {self.log}")

    def stats(self) -> dict[str, Any]:
        return httpx.get(f"{self.base_url}/_emulator/stats", timeout=120).json()

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def peak_rss_mb(self) -> float:
        assert self._proc is not None
        return peak_rss_mb(self._proc.pid)

    def cpu_seconds(self) -> float:
        """CPU the emulator used so far: near the wall time means it, not the engine, limits."""
        assert self._proc is not None
        times = psutil.Process(self._proc.pid).cpu_times()
        return times.user + times.system

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc = None


def endpoint_counts(stats: dict[str, Any], endpoint: str) -> dict[str, int]:
    """Answers the emulator gave on one endpoint, by status (``{"200": n, "429": m}``)."""
    return dict(stats.get("by_endpoint", {}).get(endpoint, {}))


def emit_result(result: dict[str, Any]) -> None:
    """A child's figures, on one marked stdout line the parent looks for."""
    print(RESULT_MARK + json.dumps(result), flush=True)


class CpuClock:
    """CPU of this process and of its child processes (the Prefect server an ephemeral run
    starts), sampled every ``interval`` seconds with the wall clock, so the CPU spent up
    to a moment the Prefect API reports (the end of the submit phase) can be read back."""

    def __init__(self, interval: float = 0.25) -> None:
        self.interval = interval
        self.samples: list[tuple[float, float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu-clock", daemon=True)
        self._children: dict[int, psutil.Process] = {}

    def _children_cpu(self) -> float:
        try:
            for child in psutil.Process().children(recursive=True):
                self._children.setdefault(child.pid, child)
        except psutil.Error:
            pass
        total = 0.0
        for pid, child in list(self._children.items()):
            try:
                times = child.cpu_times()
            except psutil.Error:
                self._children.pop(pid)  # gone: its last reading stays in the samples
                continue
            total += times.user + times.system
        return total

    def sample(self) -> tuple[float, float, float]:
        reading = (time.time(), time.process_time(), self._children_cpu())
        if self.samples:  # a child that ended takes its CPU along: keep the high mark
            reading = (reading[0], reading[1], max(reading[2], self.samples[-1][2]))
        self.samples.append(reading)
        return reading

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> CpuClock:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def at(self, wall: float) -> tuple[float, float]:
        """(own, children) CPU seconds at the wall-clock time ``wall`` (the last sample
        before it)."""
        before = [s for s in self.samples if s[0] <= wall] or self.samples[:1]
        return before[-1][1], before[-1][2]


def run_in_child(run: Callable[[], dict[str, Any]], profile: bool) -> None:
    """Run one measured mode and emit its figures with this process's CPU and peak RSS, the
    CPU of the processes it started (the Prefect server), and the engine's CPU by stage."""
    from attentive_sync.engine import stages

    stages.reset()
    with CpuClock() as clock:
        if profile:
            with StackSampler() as sampler:
                result = run()
            result["profile"] = sampler.top(20)
        else:
            result = run()
    submit_end = result.pop("submit_end_wall", None)
    if submit_end is not None:
        own, children = clock.at(submit_end)
        result.setdefault("submit_cpu_seconds", own - clock.samples[0][1])
        result["submit_server_cpu_seconds"] = children - clock.samples[0][2]
    result["server_cpu_seconds"] = clock.samples[-1][2] - clock.samples[0][2]
    result["stages"] = stages.snapshot()
    emit_result(result | {"peak_rss_mb": peak_rss_mb(), "cpu_seconds": time.process_time()})


def show_stages(stages: dict[str, list[float]], members: int) -> None:
    """The engine's CPU by stage, per member (each stage counts the CPU of the threads
    that ran it; waits on the rate limiter, sockets and locks count nothing)."""
    total = sum(cpu for cpu, _ in stages.values())
    rows = [
        (name, f"{1e6 * cpu / members:6.1f} us ({int(calls):,} calls)")
        for name, (cpu, calls) in sorted(stages.items(), key=lambda kv: -kv[1][0])
    ]
    rows.append(("all stages", f"{1e6 * total / members:6.1f} us"))
    show("Engine CPU by stage, per member", rows)


def run_child(module: str, args: list[str], env: dict[str, str], timeout: float, log: Path):
    """Run ``python -m module args`` in its own session; return the figures it emitted.

    The child's stderr (progress, Prefect's logs) goes to ``log``. Past ``timeout`` the
    child's whole process group (it may have started a Prefect server) is ended.
    """
    command = [sys.executable, "-m", module, *args]
    with log.open("w") as err:
        proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=err, env=env, cwd=ROOT, text=True,
            start_new_session=True,
        )  # fmt: skip
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.communicate()
            raise BenchError(f"{module} did not finish within {timeout:.0f} s; see {log}") from None
    marked = [line for line in out.splitlines() if line.startswith(RESULT_MARK)]
    if proc.returncode != 0 or not marked:
        tail = "\n".join(log.read_text().splitlines()[-15:])
        raise BenchError(f"{module} failed (exit {proc.returncode}); end of {log}:\n{tail}")
    return json.loads(marked[-1][len(RESULT_MARK) :])


def child_env(**values: str) -> dict[str, str]:
    """The environment of a measured child: Prefect gets a home of its own under .bench/.

    With no ``PREFECT_API_URL`` the flow starts Prefect's ephemeral server, whose database
    then lives in that home and never touches the user's ``~/.prefect``.
    """
    env = dict(os.environ, **values)
    if "PREFECT_API_URL" not in env:
        env.setdefault("PREFECT_HOME", str(BENCH_DIR / "prefect-home"))
        env.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    return env


def prefect_run_summary(flow_run_id: Any, task_name: str, subflow_name: str) -> dict[str, Any]:
    """Timings of a finished flow run and its subflow, and how many ``task_name`` runs it made.

    Task runs reach the API as events, a little after the flow ends: counted until two
    reads agree. Prefect is imported here so the engine mode never loads it.
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterId,
        FlowRunFilterParentFlowRunId,
        TaskRunFilter,
        TaskRunFilterName,
    )

    parent = FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
    by_name = TaskRunFilter(name=TaskRunFilterName(like_=task_name))

    def count_tasks(client: Any) -> tuple[int, int]:
        total = failed = offset = 0
        while page := client.read_task_runs(
            flow_run_filter=parent, task_run_filter=by_name, limit=200, offset=offset
        ):
            total += len(page)
            failed += sum(1 for run in page if run.state and not run.state.is_completed())
            offset += len(page)
        return total, failed

    with get_client(sync_client=True) as client:
        run = client.read_flow_run(flow_run_id)
        children = FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[run.id]))
        named = FlowFilter(name=FlowFilterName(any_=[subflow_name]))
        waits = client.read_flow_runs(flow_filter=named, flow_run_filter=children)
        counted, deadline = count_tasks(client), time.monotonic() + 60
        while time.monotonic() < deadline:
            time.sleep(2)
            again = count_tasks(client)
            if again == counted:
                break
            counted = again
    first_wait = min((r.start_time for r in waits if r.start_time), default=None)
    return {
        "submit_end_wall": first_wait.timestamp() if first_wait else None,
        "flow_seconds": (run.end_time - run.start_time).total_seconds(),
        "submit_seconds": (first_wait - run.start_time).total_seconds() if first_wait else None,
        "task_runs": counted[0],
        "task_runs_not_completed": counted[1],
        "subflow_runs": len(waits),
    }


def show(title: str, rows: list[tuple[str, object]]) -> None:
    """Print one benchmark's figures as a two-column table on stdout."""
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("figure", style="bold")
    table.add_column("value", justify="right")
    for name, value in rows:
        table.add_row(name, value if isinstance(value, str) else f"{value:,}")
    Console().print(table)


def show_profile(profile: dict[str, Any]) -> None:
    """CPU by thread, then the sampler's top-20s: % of samples in a function itself, and under it.

    Samples are wall-clock: a thread blocked inside a C call (a socket read, a sleep, a
    SQLite lock wait) counts in the Python function that made the call.
    """
    show(
        "CPU seconds by thread",
        [(name, f"{cpu:.1f}") for name, cpu in profile["thread_cpu"].items()],
    )
    for kind in ("own", "total"):
        rows = [(name, f"{pct:.1f} %") for name, pct in profile[kind]]
        busy = profile["busy_samples"]
        show(f"Profile: top {len(rows)} by {kind} time, % of {busy:,} samples", rows)


def add_common_arguments(parser: argparse.ArgumentParser, default_mode: str) -> None:
    """The flags every benchmark shares: which modes, profiling, a timeout, and the hidden
    ones a benchmark passes to the child process that runs one mode."""
    parser.add_argument("--mode", choices=("engine", "prefect", "both"), default=default_mode)
    parser.add_argument("--profile", action="store_true", help="sample stacks, print top-20s")
    parser.add_argument("--timeout", type=float, default=None, help="seconds per mode")
    parser.add_argument("--child", choices=("engine", "prefect"), help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
