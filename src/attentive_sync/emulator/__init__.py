"""A local Attentive that follows the published contract.

The demo runs against it and the client and flow integration tests use it. It checks what
arrives against the OpenAPI bundles on its own (it never imports the client's wire models),
so a payload bug in the client cannot pass the client's own tests.

    from attentive_sync.emulator import EmulatorConfig, EmulatorServer

    with EmulatorServer(EmulatorConfig(job_delay=0)) as server:
        ...  # point the client at server.base_url; assert on server.state
"""

from attentive_sync.emulator.app import create_app
from attentive_sync.emulator.clock import Clock, ManualClock
from attentive_sync.emulator.config import ALL_SCOPES, EmulatorConfig, FaultSettings
from attentive_sync.emulator.server import EmulatorServer, serve
from attentive_sync.emulator.state import EmulatorState

__all__ = [
    "ALL_SCOPES",
    "Clock",
    "EmulatorConfig",
    "EmulatorServer",
    "EmulatorState",
    "FaultSettings",
    "ManualClock",
    "create_app",
    "serve",
]
