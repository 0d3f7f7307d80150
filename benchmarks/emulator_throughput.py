"""How many bulk requests of 256 users a second the emulator itself can take.

The emulator runs in its own process (``attentive-sync emulator``) with a bulk rate limit
far above the contract's, so nothing is turned away and what is measured is its capacity.
The load generator is built to cost next to nothing: every request is pre-built as raw
HTTP bytes (distinct users throughout, as a backfill sends them), sent on keep-alive
sockets by a few threads that only write bytes and read the answer's length. Each thread
keeps one request in flight (a closed loop), like the engine's sending threads.

``--cycle`` adds what the engine does for every batch: after the submit, it reads the job
status until COMPLETED, then the results file. The figure then is complete batch cycles a
second.

The job work (applying users, writing the results file) is counted: the clock stops only
once ``GET /_emulator/stats`` (which finishes every due job) has answered. ``--py-spy``
samples the emulator with py-spy (install it first; it is not a dependency) and prints
the functions its time went to.

    .venv/bin/python -m benchmarks.emulator_throughput [--seconds 10] [--connections 8]
        [--cycle] [--py-spy]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from attentive_sync.settings import DEMO_API_KEY
from benchmarks._common import BENCH_DIR, Emulator, show

USERS_PER_REQUEST = 256
BULK_PATH = "/v2/bulk/user/attributes"


def bulk_user(n: int) -> dict[str, Any]:
    """One realistic backfill user: three identifiers, a name, a tier and an audience flag."""
    return {
        "identifiers": {
            "phone": f"+1415{n % 10_000_000:07d}",
            "email": f"member{n}@example.com",
            "clientUserId": f"c{n}",
        },
        "attributes": {
            "firstName": f"Member{n % 997}",
            "custom": {"tier": ("Bronze", "Silver", "Gold")[n % 3], "VIP audience": True},
        },
    }


def http_request(method: str, path: str, host: str, body: bytes = b"") -> bytes:
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: Bearer {DEMO_API_KEY}\r\nAccept: application/json\r\n"
    )
    if body:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return (head + "\r\n").encode() + body


def prebuilt_submits(count: int, host: str) -> list[bytes]:
    """``count`` bulk submits as raw HTTP requests, every user distinct."""
    out = []
    for i in range(count):
        users = [bulk_user(i * USERS_PER_REQUEST + j) for j in range(USERS_PER_REQUEST)]
        body = json.dumps({"users": users}, separators=(",", ":")).encode()
        out.append(http_request("POST", BULK_PATH, host, body))
    return out


class Connection:
    """One keep-alive socket that sends a request and reads one whole answer."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buffer = b""

    def exchange(self, request: bytes) -> tuple[int, bytes]:
        self.sock.sendall(request)
        while b"\r\n\r\n" not in self._buffer:
            self._fill()
        head, _, rest = self._buffer.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(rest) < length:
            rest += self._recv()
        self._buffer = rest[length:]
        return status, rest[:length]

    def _recv(self) -> bytes:
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("the emulator closed the connection")
        return chunk

    def _fill(self) -> None:
        self._buffer += self._recv()

    def close(self) -> None:
        self.sock.close()


class Load:
    """Threads that take the next pre-built submit and send it until time is up."""

    def __init__(self, port: int, requests: list[bytes], cycle: bool) -> None:
        self.port = port
        self.host = f"127.0.0.1:{port}"
        self.requests = requests
        self.cycle = cycle
        self.next = 0
        self.lock = threading.Lock()
        self.done = 0
        self.answers: dict[int, int] = {}
        self.polls = 0
        self.stop_at = 0.0

    def take(self) -> bytes | None:
        with self.lock:
            if self.next >= len(self.requests) or time.monotonic() >= self.stop_at:
                return None
            self.next += 1
            return self.requests[self.next - 1]

    def count(self, status: int, polls: int = 0) -> None:
        with self.lock:
            self.done += 1
            self.polls += polls
            self.answers[status] = self.answers.get(status, 0) + 1

    def worker(self) -> None:
        conn = Connection(self.port)
        try:
            while (request := self.take()) is not None:
                status, body = conn.exchange(request)
                polls = self.follow(conn, body) if self.cycle and status == 202 else 0
                self.count(status, polls)
        finally:
            conn.close()

    def follow(self, conn: Connection, submit_answer: bytes) -> int:
        """Read the job status until completed, then the results file (the engine's path)."""
        job_id = json.loads(submit_answer)["batchJobId"]
        status_request = http_request("GET", f"/v2/bulk/job/{job_id}", self.host)
        polls = 0
        while True:
            polls += 1
            status, body = conn.exchange(status_request)
            if status == 200 and json.loads(body)["status"] == "COMPLETED":
                break
            time.sleep(0.02)
        path = f"/v2/bulk/job/{job_id}/results.jsonl"
        status, body = conn.exchange(http_request("GET", path, self.host))
        lines = body.count(b"\n")
        if status != 200 or lines != USERS_PER_REQUEST:
            raise RuntimeError(f"results file answered {status} with {lines} lines")
        return polls + 1

    def run(self, connections: int, seconds: float) -> float:
        self.stop_at = time.monotonic() + seconds
        threads = [threading.Thread(target=self.worker) for _ in range(connections)]
        start = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return start


def py_spy(pid: int) -> subprocess.Popen[bytes]:
    """py-spy sampling the emulator; its folded stacks land in ``.bench/``."""
    out = BENCH_DIR / "emulator-throughput.folded"
    tool = Path(sys.executable).with_name("py-spy")
    command = [
        str(tool),
        "record",
        "--pid",
        str(pid),
        "--rate",
        "200",
        "--format",
        "raw",
        "-o",
        str(out),
    ]
    spy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    return spy


def _function(frame: str) -> str:
    """``name (path/file.py:line)`` -> ``name (file.py)``: samples add up per function."""
    name, _, where = frame.partition(" (")
    return f"{name} ({where.rsplit('/', 1)[-1].split(':')[0]})"


def show_folded(path: Path, top: int = 25) -> None:
    """The functions most samples were in (own) and under (total), from folded stacks."""
    own: dict[str, int] = {}
    total: dict[str, int] = {}
    samples = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        count = int(count_text)
        frames = [_function(frame) for frame in stack.split(";")]
        samples += count
        own[frames[-1]] = own.get(frames[-1], 0) + count
        for frame in set(frames):
            total[frame] = total.get(frame, 0) + count
    for title, table in (("own", own), ("total", total)):
        ranked = sorted(table.items(), key=lambda item: -item[1])[:top]
        show(
            f"py-spy: top {top} by {title} samples, % of {samples:,}",
            [(name[:90], f"{count / samples * 100:.1f} %") for name, count in ranked],
        )


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--cycle", action="store_true", help="submit, poll, read results")
    parser.add_argument("--job-delay", type=float, default=0.2)
    parser.add_argument("--max-rate", type=int, default=260, help="requests pre-built per second")

    parser.add_argument("--py-spy", action="store_true", help="record the emulator with py-spy")
    args = parser.parse_args()

    BENCH_DIR.mkdir(exist_ok=True)
    log = Path(BENCH_DIR / "emulator-throughput.log")
    options = ["--bulk-rate-limit", "1000000", "--default-rate-limit", "1000000"]
    with Emulator(args.job_delay, log, options) as emulator:
        host = f"127.0.0.1:{emulator.port}"
        started = time.monotonic()
        requests = prebuilt_submits(int(args.max_rate * args.seconds), host)
        built = time.monotonic() - started
        load = Load(emulator.port, requests, args.cycle)
        cpu_before = emulator.cpu_seconds()
        load_before = load_average()
        spy = py_spy(emulator.pid) if args.py_spy else None
        own_cpu = time.process_time()
        start = load.run(args.connections, args.seconds)
        own_cpu = time.process_time() - own_cpu
        answered = time.monotonic()
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(60)
            show_folded(BENCH_DIR / "emulator-throughput.folded")
        stats = emulator.stats()  # finishes every job that is due
        settled = time.monotonic()
        cpu = emulator.cpu_seconds() - cpu_before
        users = stats["users"]
    elapsed = settled - start
    rate = load.done / elapsed
    name = "batch cycles" if args.cycle else "bulk submits"
    show(
        f"Emulator throughput ({name} of {USERS_PER_REQUEST} users)",
        [
            ("connections", args.connections),
            (f"{name} answered", load.done),
            ("answers by status", json.dumps(load.answers)),
            ("status + results reads", load.polls),
            (
                "wall time, to last answer / to all jobs applied",
                f"{answered - start:.2f} s / {elapsed:.2f} s",
            ),
            (f"{name}/s", f"{rate:.1f}"),
            ("users/s", f"{rate * USERS_PER_REQUEST:,.0f}"),
            (
                "emulator CPU",
                f"{cpu:.1f} s ({cpu / max(load.done, 1) * 1e3:.2f} ms per {name[:-1]})",
            ),
            ("load generator CPU", f"{own_cpu:.1f} s"),
            ("users stored by the emulator", users),
            ("all pre-built requests used", "yes" if load.next >= len(requests) else "no"),
            ("request build time (not measured)", f"{built:.1f} s"),
            ("load average before / after (1, 5, 15 min)", f"{load_before} / {load_average()}"),
        ],
    )


if __name__ == "__main__":
    main()
