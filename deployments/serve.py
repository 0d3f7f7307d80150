"""Serve every deployment of prefect.yaml from this one process, without a work pool or worker.

    make serve            # or: .venv/bin/python -m deployments.serve

Point PREFECT_API_URL at a running Prefect server (`prefect server start`) to see the
deployments, their schedules and their runs in the UI.
"""

from __future__ import annotations

from prefect import serve

from flows.registry import runner_deployments


def main() -> None:
    serve(*runner_deployments())


if __name__ == "__main__":
    main()
