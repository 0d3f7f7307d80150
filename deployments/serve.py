"""`make serve`: a Prefect server with its UI, and every deployment of prefect.yaml on its
schedule, served from this one process (no work pool or worker needed).

With PREFECT_API_URL already set, the deployments are served to that server instead, and
no server is started. Stop with Ctrl-C.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
from prefect import serve

from attentive_sync.flows.registry import runner_deployments

HOST, PORT = "127.0.0.1", int(os.environ.get("PREFECT_SERVER_API_PORT", "4200"))
API_URL = f"http://{HOST}:{PORT}/api"


def start_server() -> subprocess.Popen[bytes]:
    """``prefect server start`` in a child process; returns once its API answers."""
    server = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", HOST, "--port", str(PORT)]
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the Prefect server exited with code {server.returncode}")
        try:
            if httpx.get(f"{API_URL}/health", timeout=2).is_success:
                return server
        except httpx.TransportError:
            pass
        time.sleep(1)
    server.terminate()
    raise SystemExit("the Prefect server did not answer within 90 seconds")


def main() -> None:
    server = None
    if "PREFECT_API_URL" not in os.environ:
        server = start_server()
        os.environ["PREFECT_API_URL"] = API_URL
        print(f"Prefect UI: http://{HOST}:{PORT}", flush=True)
    try:
        serve(*runner_deployments())
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
