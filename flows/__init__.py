"""Prefect flows: thin composition over the core library, no business logic.

Importing this package turns Prefect's telemetry off (client and server) for every entry
point that runs a flow: the CLI, `make serve`, the demo, a worker. It also gives Prefect's
temporary local server (a run with no PREFECT_API_URL) two minutes to start instead of 20
seconds, so a busy machine starts a run slowly rather than failing it. It runs before any
flow module imports Prefect, which reads its settings once, on import.
"""

import os

os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
