"""Running the emulator: in a background thread for tests, or in the foreground for the CLI."""

from __future__ import annotations

import gc
import logging
import socket
import threading
from types import TracebackType

import uvicorn
from starlette.applications import Starlette

from attentive_sync.emulator.app import create_app
from attentive_sync.emulator.config import EmulatorConfig
from attentive_sync.emulator.state import EmulatorState

_STARTUP_TIMEOUT = 10.0
_GC_YOUNG_THRESHOLD = 100_000
_DROPPED_MESSAGE = "ASGI callable returned without completing response."


class _DroppedConnectionFilter(logging.Filter):
    """A dropped connection is an injected fault, not a server error worth a log line."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != _DROPPED_MESSAGE


def _quiet_dropped_connections() -> None:
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _DroppedConnectionFilter) for f in logger.filters):
        logger.addFilter(_DroppedConnectionFilter())


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket; port 0 picks a free port.

    The protocol is set to ``IPPROTO_TCP`` explicitly: asyncio enables ``TCP_NODELAY`` only on
    sockets that declare it, and without it every answer stalls ~40 ms on delayed ACKs.
    """
    family, _, _, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )[0]
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen()
    except OSError:
        sock.close()
        raise
    return sock


def _fewer_collections() -> None:
    """Run the cyclic garbage collector less often in a process that serves the emulator.

    A bulk request parses into some 3,000 small containers, which by default sets off four
    young-generation collections per request and, as they survive into the job, older ones
    that walk everything the emulator keeps: a fifth of its CPU at full speed. Nothing it
    keeps forms reference cycles worth chasing that often.
    """
    gc.set_threshold(_GC_YOUNG_THRESHOLD, 20, 20)


def _uvicorn_config(app: Starlette) -> uvicorn.Config:
    # No access log: request paths of the custom-attributes read carry phones and emails.
    return uvicorn.Config(app, access_log=False, lifespan="off", log_level="warning")


class EmulatorServer:
    """An emulator on a real socket, served by uvicorn in a daemon thread.

    >>> with EmulatorServer(EmulatorConfig(job_delay=0)) as server:  # doctest: +SKIP
    ...     httpx.get(f"{server.base_url}/v1/me", headers=...)
    """

    def __init__(
        self, config: EmulatorConfig | None = None, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        app = create_app(config or EmulatorConfig())
        self.state: EmulatorState = app.state.emulator
        self._uvicorn = _uvicorn_config(app)
        self._host = host
        self._port = port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    @property
    def base_url(self) -> str:
        if self._socket is None:
            raise RuntimeError("the emulator server is not running")
        host, port = self._socket.getsockname()[:2]
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def start(self) -> EmulatorServer:
        """Bind (port 0 picks a free port) and serve until :meth:`stop`."""
        _quiet_dropped_connections()
        self._socket = bind(self._host, self._port)
        self._server = uvicorn.Server(self._uvicorn)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._socket]},
            name="attentive-emulator",
            daemon=True,
        )
        self._thread.start()
        self._wait_started()
        return self

    def _wait_started(self) -> None:
        assert self._server is not None and self._thread is not None
        waited = 0.0
        while not self._server.started:
            if not self._thread.is_alive() or waited >= _STARTUP_TIMEOUT:
                self.stop()
                raise RuntimeError("the emulator server did not start")
            threading.Event().wait(0.01)
            waited += 0.01

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(_STARTUP_TIMEOUT)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def serve(config: EmulatorConfig | None = None, host: str = "127.0.0.1", port: int = 8085) -> None:
    """Serve the emulator in the foreground until interrupted (Ctrl-C).

    The socket is bound here, before uvicorn starts, so a busy port raises ``OSError`` for
    the caller to report instead of ending the process from inside uvicorn.
    """
    _quiet_dropped_connections()
    _fewer_collections()
    with bind(host, port) as sock:
        app = create_app(config or EmulatorConfig())
        uvicorn.Server(_uvicorn_config(app)).run(sockets=[sock])
