"""Benchmark: the intake's memory while it refuses a huge unsigned chunked body.

Starts the intake (uvicorn, SQLite state store) in its own process, then for each endpoint
streams a body of SIZE megabytes with ``Transfer-Encoding: chunked`` (no Content-Length)
and no valid signature over a raw socket, watching for the answer while it sends. The
intake's resident memory is sampled every 5 ms throughout; the script prints its peak,
the answer, and how much of the body was sent (a sender that stops at the answer, and
a stubborn one that sends all of it).

    python -m benchmarks.intake_flood [--size-mb 400] [--port 8091]

Nothing is stored: the script checks the queue is empty afterwards.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import select
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

CHUNK = 64 * 1024
PATHS = ("/loyaltylion", "/events", "/deltas")


def serve(db: str, port: int) -> None:
    """The child process: the intake on loopback, as ``intake serve`` runs it."""
    import uvicorn
    from pydantic import SecretStr

    from attentive_sync.intake import LoyaltyLionAdapter, create_intake_app
    from attentive_sync.store import Store

    store = Store.from_url(f"sqlite:///{db}")
    app = create_intake_app(
        store, SecretStr("bench-intake"), platforms=[LoyaltyLionAdapter(SecretStr("bench-lion"))]
    )
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


class RssSampler:
    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, self.process.memory_info().rss)
            except psutil.Error:
                return
            time.sleep(0.005)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()


def flood(port: int, path: str, size: int, stubborn: bool) -> tuple[str, int, float]:
    """Stream ``size`` bytes chunked to ``path``; returns (answer, bytes sent, seconds).
    A ``stubborn`` sender ignores the answer and keeps sending until the intake hangs up."""
    sock = socket.create_connection(("127.0.0.1", port))
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        "x-loyaltylion-hmac-sha256: bm90LWEtc2lnbmF0dXJl\r\n"
        f"webhook-id: msg_flood\r\nwebhook-timestamp: {int(time.time())}\r\n"
        "webhook-signature: v1,bm90LWEtc2lnbmF0dXJl\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    )
    sock.sendall(head.encode())
    piece = f"{CHUNK:x}\r\n".encode() + b"a" * CHUNK + b"\r\n"
    sent, started, answer = 0, time.monotonic(), b""
    try:
        while sent < size:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable and not answer:
                answer = sock.recv(4096)
            if answer and not stubborn:
                break
            sock.sendall(piece)
            sent += CHUNK
        else:
            sock.sendall(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass
    sock.settimeout(10)
    with contextlib.suppress(OSError):
        answer = answer or sock.recv(4096)
    sock.close()
    status = answer.split(b"\r\n", 1)[0].decode(errors="replace") or "(connection closed)"
    body = answer.split(b"\r\n\r\n", 1)[-1].decode(errors="replace")
    return f"{status} {body}".strip(), sent, time.monotonic() - started


def wait_ready(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("the intake did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=400)
    parser.add_argument("--port", type=int, default=8091)
    parser.add_argument("--serve", metavar="DB", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port)
        return

    from sqlalchemy import func, select

    from attentive_sync.store import Store
    from attentive_sync.store.tables import audience_deltas, loyalty_events

    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "state.db")
        Store.from_url(f"sqlite:///{db}").init()
        command = [sys.executable, "-m", "benchmarks.intake_flood", "--serve", db]
        child = subprocess.Popen([*command, "--port", str(args.port)])
        try:
            wait_ready(args.port)
            idle = psutil.Process(child.pid).memory_info().rss
            print(f"intake idle RSS: {idle / 2**20:.1f} MB")
            size = args.size_mb * 2**20
            for path, stubborn in [(p, s) for s in (False, True) for p in PATHS]:
                with RssSampler(child.pid) as sampler:
                    answer, sent, seconds = flood(args.port, path, size, stubborn)
                print(
                    json.dumps(
                        {
                            "path": path,
                            "sender": "stubborn" if stubborn else "stops at the answer",
                            "body_mb": args.size_mb,
                            "answer": answer,
                            "sent_mb": round(sent / 2**20, 2),
                            "seconds": round(seconds, 3),
                            "peak_rss_mb": round(sampler.peak / 2**20, 1),
                        }
                    )
                )
        finally:
            child.terminate()
            child.wait(10)
        store = Store.from_url(f"sqlite:///{db}")
        with store.engine.connect() as conn:
            rows = sum(
                conn.scalar(select(func.count()).select_from(t)) or 0
                for t in (loyalty_events, audience_deltas)
            )
        store.close()
        print(f"rows stored: {rows}")


if __name__ == "__main__":
    main()
