"""The emulator as a Starlette application."""

from __future__ import annotations

import time

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from attentive_sync.emulator.api import api_routes
from attentive_sync.emulator.clock import Clock
from attentive_sync.emulator.config import EmulatorConfig
from attentive_sync.emulator.errors import error_response
from attentive_sync.emulator.inspection import inspection_routes
from attentive_sync.emulator.state import EmulatorState


async def _unexpected(request: Request, exc: Exception) -> Response:
    """Even an emulator bug answers in the contract's error envelope."""
    return error_response(500, f"emulator fault: {type(exc).__name__}", 0)


def create_app(config: EmulatorConfig | None = None, *, clock: Clock | None = None) -> Starlette:
    """A fresh emulator; its state is ``app.state.emulator`` (an :class:`EmulatorState`)."""
    app = Starlette(
        routes=[*inspection_routes(), *api_routes()],
        exception_handlers={Exception: _unexpected},
    )
    app.state.emulator = EmulatorState(config or EmulatorConfig(), clock or time.monotonic)
    return app
