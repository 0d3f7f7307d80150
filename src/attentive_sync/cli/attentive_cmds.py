"""``attentive-sync check-key``: validate the configured Attentive API key."""

from __future__ import annotations

import typer

from attentive_sync.attentive import AttentiveClient, AttentiveError
from attentive_sync.cli._common import console, user_errors
from attentive_sync.settings import AttentiveSettings


def check_key(
    base_url: str = typer.Option(None, help="Attentive base URL (default: ATTENTIVE_BASE_URL)."),
) -> None:
    """Call Attentive's /v1/me with ATTENTIVE_API_KEY and say which company it belongs to."""
    with user_errors(AttentiveError):
        settings = AttentiveSettings(base_url=base_url) if base_url else AttentiveSettings()
        with AttentiveClient(settings) as client:
            info = client.me()
    console.print(
        f"[green]key is valid[/] for [bold]{info.company_name}[/] "
        f"(company {info.company_id}) at {settings.base_url}"
    )


def register(app: typer.Typer) -> None:
    app.command("check-key")(check_key)
