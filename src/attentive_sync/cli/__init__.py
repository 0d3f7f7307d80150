"""The ``attentive-sync`` command: everything a user runs by hand.

Each command group lives in its own module and is registered here.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    name="attentive-sync",
    help="Keep Attentive in sync with a loyalty program and customer audiences.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


@app.callback()
def main() -> None:
    """Keep Attentive in sync with a loyalty program and customer audiences."""


def _register() -> None:
    # Imported here so `attentive-sync --help` stays cheap and the modules stay independent.
    from attentive_sync.cli import attentive_cmds

    attentive_cmds.register(app)
    from attentive_sync.cli import data_cmds

    data_cmds.register(app)
    from attentive_sync.cli import store_cmds

    store_cmds.register(app)
    from attentive_sync.cli import run_cmds

    run_cmds.register(app)
    from attentive_sync.cli import emulator_cmd

    emulator_cmd.register(app)


_register()
