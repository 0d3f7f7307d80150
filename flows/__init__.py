"""Prefect flows: thin composition over the core library, no business logic.

Importing this package turns Prefect's telemetry off (client and server) for every entry
point that runs a flow: the CLI, `make serve`, the demo, a worker. It runs before any flow
module imports Prefect, which reads its settings once, on import.
"""

import os

os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
