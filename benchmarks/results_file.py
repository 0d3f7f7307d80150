"""Benchmark: read one bulk job results file of N lines (default 1,000,000) with the client.

    .venv/bin/python -m benchmarks.results_file                  # 1,000,000 lines
    .venv/bin/python -m benchmarks.results_file --lines 100000 --keep

A small server on the loopback interface (uvicorn, in its own process) streams a results
file shaped like the emulator's (one JSON object per line: index, the request, the
response; one line in 100 a 400), generated as it is sent so it never sits in memory or on
disk. A measured child process reads it with ``AttentiveClient.iter_bulk_results`` and
reports the time, its peak RSS, and its peak RSS before the download started: the
difference is what reading the file cost. ``--keep`` also keeps every result in a dict by
index while reading, as a caller that settles a job from a whole file does.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
from pydantic import SecretStr

from attentive_sync.attentive import AttentiveClient, RecordResult
from attentive_sync.settings import AttentiveSettings
from benchmarks._common import (
    BENCH_DIR,
    BenchError,
    _free_port,
    add_common_arguments,
    child_env,
    console,
    peak_rss_mb,
    run_child,
    run_in_child,
    show,
    show_profile,
)

PATH = "/v2/bulk/job/bench/results.jsonl"
CHUNK_LINES = 1000
ACCEPTED = '{"status":200,"message":"OK"}'
REJECTED = '{"status":400,"message":"phone is not a valid phone number"}'


def results_lines(lines: int) -> Iterator[bytes]:
    """The file, CHUNK_LINES lines per chunk, in the emulator's format."""
    for start in range(0, lines, CHUNK_LINES):
        yield "".join(
            f'{{"index":{i},"request":{{"identifiers":{{"phone":"+1555{i:07d}",'
            f'"clientUserId":"customer-{i}"}},"attributes":{{"custom":{{"vip":true}}}}}},'
            f'"response":{REJECTED if i % 100 == 99 else ACCEPTED}}}\n'
            for i in range(start, min(lines, start + CHUNK_LINES))
        ).encode()


def serve(port: int, lines: int) -> None:
    """The results server (runs as ``--serve``), bound to 127.0.0.1 only."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import StreamingResponse
    from starlette.routing import Route

    async def results(request: Request) -> StreamingResponse:
        return StreamingResponse(results_lines(lines), media_type="application/x-ndjson")

    app = Starlette(routes=[Route(PATH, results)])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


class ResultsServer:
    """``serve`` in a child process, for as long as the ``with`` block runs."""

    def __init__(self, lines: int) -> None:
        self.port = _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.lines = lines
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ResultsServer:
        log = (BENCH_DIR / "results-file-server.log").open("wb")
        command = [sys.executable, "-m", "benchmarks.results_file", "--serve"]
        command += ["--port", str(self.port), "--lines", str(self.lines)]
        self._proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise BenchError("the results server exited at start; see its log in .bench/")
            try:
                httpx.get(f"{self.base_url}/ready", timeout=2)
                return self
            except httpx.TransportError:
                time.sleep(0.1)
        self.__exit__()
        raise BenchError("the results server did not answer within 30 s")

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(10)
            self._proc = None


def read_file(base_url: str, keep: bool) -> dict[str, Any]:
    """The measured run: iterate the whole file; count what it says."""
    settings = AttentiveSettings(api_key=SecretStr("bench-key"), base_url=base_url)
    kept: dict[int, RecordResult] = {}
    lines = accepted = 0
    with AttentiveClient(settings) as client:
        rss_before = peak_rss_mb()
        started = time.perf_counter()
        for result in client.iter_bulk_results(f"{base_url}{PATH}"):
            lines += 1
            accepted += result.accepted
            if keep:
                kept[result.index] = result
        seconds = time.perf_counter() - started
    return {
        "lines_read": lines,
        "accepted": accepted,
        "kept": len(kept),
        "seconds": seconds,
        "rss_before_mb": rss_before,
    }


def report(lines: int, keep: bool, r: dict[str, Any]) -> None:
    size = sum(len(chunk) for chunk in results_lines(lines))
    rows: list[tuple[str, object]] = [
        ("lines served / read", f"{lines:,} / {r['lines_read']:,}"),
        ("file size", f"{size / 2**20:,.0f} MiB"),
        ("accepted / other", f"{r['accepted']:,} / {r['lines_read'] - r['accepted']:,}"),
        ("results kept in a dict", f"{r['kept']:,}" if keep else "no"),
        ("time to read", f"{r['seconds']:.1f} s ({r['lines_read'] / r['seconds']:,.0f} lines/s)"),
        ("CPU (user + sys)", f"{r['cpu_seconds']:.1f} s"),
        ("peak RSS before the download", f"{r['rss_before_mb']:.0f} MB"),
        ("peak RSS", f"{r['peak_rss_mb']:.0f} MB"),
        ("cost of reading the file", f"{r['peak_rss_mb'] - r['rss_before_mb']:.0f} MB"),
    ]
    show("Bulk results file, streamed by the client", rows)
    if r.get("profile"):
        show_profile(r["profile"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--keep", action="store_true", help="keep every result by index")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    add_common_arguments(parser, default_mode="engine")
    args = parser.parse_args(argv)
    if args.lines < 1:
        parser.error("--lines must be at least 1")
    if args.mode != "engine":
        parser.error("results files are read by the client alone: only --mode engine applies")
    if args.serve:
        serve(args.port, args.lines)
        return 0
    if args.child:
        run_in_child(lambda: read_file(args.base_url, args.keep), args.profile)
        return 0
    BENCH_DIR.mkdir(exist_ok=True)
    log = BENCH_DIR / "results-file.log"
    try:
        with ResultsServer(args.lines) as server:
            child = ["--child", "engine", "--base-url", server.base_url, "--lines", str(args.lines)]
            child += ["--keep"] * args.keep + ["--profile"] * args.profile
            console.print(f"{time.strftime('%X')} reading {args.lines:,} lines (log: {log})")
            result = run_child(
                "benchmarks.results_file", child, child_env(), args.timeout or 600, log
            )
        report(args.lines, args.keep, result)
    except BenchError as exc:
        console.print(f"[red]{exc}[/red]")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
