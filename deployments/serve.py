"""`make serve`: one Prefect server with its UI, and every deployment of prefect.yaml on its
schedule, served from this one process (no work pool or worker needed).

With PREFECT_API_URL already set, the deployments are served to that server and none is
started. The first Ctrl-C stops the runner, then the server.

Prefect reads its settings once, when it is first imported, so everything it must see
(the API URL above all: otherwise the runner starts a temporary server of its own) is put
in the environment before anything imports Prefect.
"""

from __future__ import annotations

import _thread
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import httpx
import psutil

HOST = "127.0.0.1"
DEFAULT_PORT = int(os.environ.get("PREFECT_SERVER_API_PORT", "4200"))
STARTUP_SECONDS = 90
# How long the runner may take to stop on a Ctrl-C before it is interrupted once more.
STOP_GRACE_SECONDS = 10.0


@contextmanager
def prefect_server(port: int) -> Iterator[str]:
    """``prefect server start`` in a child process, for as long as the block runs.

    The child gets a session of its own, so the terminal's Ctrl-C reaches only this process:
    the runner stops first while the server still answers, then the server is stopped.
    """
    api_url = f"http://{HOST}:{port}/api"
    if _answers(api_url):
        raise SystemExit(f"port {port} already has a Prefect server: set PREFECT_API_URL={api_url}")
    server = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", HOST, "--port", str(port)],
        start_new_session=True,
    )
    try:
        _wait_until_up(server, api_url)
        yield api_url
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()


def _answers(api_url: str) -> bool:
    try:
        return httpx.get(f"{api_url}/health", timeout=2).is_success
    except httpx.TransportError:
        return False


def _wait_until_up(server: subprocess.Popen[bytes], api_url: str) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the Prefect server exited with code {server.returncode}")
        if _answers(api_url):
            return
        time.sleep(0.5)
    raise SystemExit(f"the Prefect server did not answer within {STARTUP_SECONDS} seconds")


def serve_deployments(interval_seconds: float | None) -> None:
    # Imported only now: PREFECT_API_URL is in the environment before Prefect loads.
    from prefect import serve

    from attentive_sync.flows.registry import runner_deployments

    serve(*runner_deployments(interval_seconds))


@contextmanager
def one_ctrl_c() -> Iterator[None]:
    """Make the terminal's Ctrl-C reach this process only, and stop the flow runs from here.

    Ctrl-C sends SIGINT to every process of the terminal's group, so a flow run the runner
    was just starting would die in the middle of its imports, printing a KeyboardInterrupt
    traceback. SIGINT is blocked here instead, and so in every flow run started from here
    (children inherit the mask). One thread takes each SIGINT: it sends SIGTERM to the flow
    runs (a starting interpreter ends quietly on it; a running flow is stopped by Prefect's
    own handler) and interrupts this process, which stops the runner as a Ctrl-C would.
    """
    if not hasattr(signal, "pthread_sigmask"):  # not on Windows
        yield
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    served = threading.Event()

    def take_ctrl_c() -> None:
        while True:
            signal.sigwait({signal.SIGINT})
            _stop_flow_runs(wait=0)
            _thread.interrupt_main()
            # The first interrupt cancels the runner's task; one that lands while the
            # runner is starting a flow run can be lost, and the runner serves on. Still
            # serving after the grace, a second one stops its event loop (as a second
            # Ctrl-C would): one Ctrl-C always stops everything.
            if not served.wait(STOP_GRACE_SECONDS):
                _stop_flow_runs(wait=0)
                _thread.interrupt_main()

    threading.Thread(target=take_ctrl_c, name="ctrl-c", daemon=True).start()
    try:
        yield
    finally:
        served.set()
        # Runs the runner started while it was stopping end too, before the server does.
        _stop_flow_runs(wait=10)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def _stop_flow_runs(wait: float) -> None:
    """SIGTERM to every flow run started from here; after ``wait`` seconds, SIGKILL."""
    runs = [child for child in psutil.Process().children(recursive=True) if _is_flow_run(child)]
    for run in runs:
        with suppress(psutil.Error):
            run.terminate()
    if wait:
        _, alive = psutil.wait_procs(runs, timeout=wait)
        for run in alive:
            with suppress(psutil.Error):
                run.kill()


def _is_flow_run(process: psutil.Process) -> bool:
    """A flow run process, not the Prefect server (which is stopped after the runner)."""
    try:
        return "server" not in process.cmdline()
    except psutil.Error:  # it ended meanwhile
        return False


def check_store() -> None:
    """Refuse to start, in one line, when no run could: the state store is not ready."""
    from attentive_sync.settings import SyncSettings
    from attentive_sync.store import Store, StoreError

    try:
        with Store.from_url(SyncSettings().db_url) as store:
            store.check_schema()
    except StoreError as exc:
        raise SystemExit(f"error: {exc}") from None


def main(port: int = DEFAULT_PORT, interval_seconds: float | None = None) -> None:
    """Serve every deployment; ``interval_seconds`` replaces the 30-second schedules."""
    import attentive_sync.flows  # noqa: F401  (turns Prefect's telemetry off first)

    check_store()
    if os.environ.get("PREFECT_API_URL"):
        print(f"Serving to the Prefect server at {os.environ['PREFECT_API_URL']}", flush=True)
        try:
            with one_ctrl_c():
                serve_deployments(interval_seconds)
        except KeyboardInterrupt:
            pass
        print("Stopped.", flush=True)
        return
    try:
        with prefect_server(port) as api_url, one_ctrl_c():
            os.environ["PREFECT_API_URL"] = api_url
            print(f"Prefect UI: http://{HOST}:{port}  (Ctrl-C stops everything)", flush=True)
            serve_deployments(interval_seconds)
    except KeyboardInterrupt:
        # A Ctrl-C while the server was still starting, or a second one while stopping.
        pass
    print("Stopped.", flush=True)


if __name__ == "__main__":
    main()
