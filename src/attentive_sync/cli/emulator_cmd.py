"""``attentive-sync emulator``: run the local Attentive emulator in the foreground."""

from __future__ import annotations

import ipaddress

import typer
from pydantic import ValidationError

from attentive_sync.cli._common import console, fail
from attentive_sync.emulator import ALL_SCOPES, EmulatorConfig, FaultSettings, serve
from attentive_sync.settings import DEMO_API_KEY


class CommandError(ValueError):
    """A mistake in the command line, reported as one line."""


def parse_api_key(text: str) -> tuple[str, frozenset[str]]:
    """``KEY=SCOPE,SCOPE`` -> ``(key, scopes)``; ``KEY=`` gives a key with no scope at all."""
    key, sep, scopes_text = text.partition("=")
    if not sep or not key.strip():
        raise CommandError("--api-key takes KEY=SCOPE,SCOPE (for example KEY=events:write)")
    scopes = frozenset(s.strip() for s in scopes_text.split(",") if s.strip())
    unknown = sorted(scopes - ALL_SCOPES)
    if unknown:
        known = ", ".join(sorted(ALL_SCOPES))
        raise CommandError(f"unknown scope(s) {', '.join(unknown)} in --api-key; known: {known}")
    return key.strip(), scopes


def parse_api_keys(texts: list[str]) -> dict[str, frozenset[str]]:
    keys: dict[str, frozenset[str]] = {}
    for text in texts:
        key, scopes = parse_api_key(text)
        if key in keys:
            raise CommandError("the same key is given twice in --api-key")
        keys[key] = scopes
    return keys


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _validation_message(exc: ValidationError) -> str:
    return "; ".join(
        f"--{str(err['loc'][-1]).replace('_', '-')}: {err['msg']}" for err in exc.errors()
    )


def emulator(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8085, min=0, max=65535, help="Port to listen on."),
    api_key: list[str] = typer.Option(
        [], "--api-key", help="KEY=SCOPE,SCOPE; repeatable. Default: the demo key, every scope."
    ),
    job_delay: float = typer.Option(0.2, help="Seconds from bulk submit to job completion."),
    error_rate: float = typer.Option(0.0, help="Share of API answers that are 5xx."),
    latency_ms: float = typer.Option(0.0, help="Milliseconds added to every API answer."),
    fail_job_rate: float = typer.Option(0.0, help="Share of bulk jobs that end FAILED."),
    slow_job_rate: float = typer.Option(0.0, help="Share of bulk jobs that finish late."),
    slow_job_delay: float = typer.Option(5.0, help="Seconds a slow job takes."),
    drop_rate: float = typer.Option(0.0, help="Share of connections closed without an answer."),
    lose_response_rate: float = typer.Option(
        0.0, help="Share of accepted bulk submits and custom events whose answer is lost."
    ),
    bulk_rate_limit: int = typer.Option(100, help="Bulk submits and job reads per key per second."),
    default_rate_limit: int = typer.Option(150, help="Other requests per key per second."),
    seed: int = typer.Option(0, help="Seed for every random fault, so runs repeat."),
    retry_after: bool = typer.Option(False, help="Send Retry-After with 429 (Attentive does not)."),
    allow_remote: bool = typer.Option(False, help="Allow listening on a non-loopback interface."),
) -> None:
    """Run a local Attentive that follows the published API contract."""
    if not is_loopback(host) and not allow_remote:
        fail(
            f"{host} is not a loopback address; the inspection API has no auth. "
            "Pass --allow-remote to listen there anyway.",
            code=2,
        )
    try:
        keys = parse_api_keys(api_key) if api_key else {DEMO_API_KEY: ALL_SCOPES}
        config = EmulatorConfig(
            keys=keys,
            job_delay=job_delay,
            bulk_rate_limit=bulk_rate_limit,
            job_status_rate_limit=bulk_rate_limit,
            default_rate_limit=default_rate_limit,
            send_retry_after=retry_after,
            seed=seed,
            faults=FaultSettings(
                error_rate=error_rate,
                latency_ms=latency_ms,
                fail_job_rate=fail_job_rate,
                slow_job_rate=slow_job_rate,
                slow_job_delay=slow_job_delay,
                drop_rate=drop_rate,
                lose_response_rate=lose_response_rate,
            ),
        )
    except CommandError as exc:
        fail(str(exc), code=2)
    except ValidationError as exc:
        fail(_validation_message(exc), code=2)
    if not api_key:
        console.print(f"using the demo API key [bold]{DEMO_API_KEY}[/] (every scope)")
    else:
        console.print(f"{len(keys)} API key(s) configured")
    shown = f"[{host}]" if ":" in host else host
    console.print(
        f"Attentive emulator on [bold]http://{shown}:{port}[/] "
        "(inspection API under /_emulator/); Ctrl-C stops it"
    )
    try:
        serve(config, host=host, port=port)
    except OSError as exc:
        fail(f"cannot listen on {shown}:{port}: {exc.strerror or exc}")


def register(app: typer.Typer) -> None:
    app.command("emulator")(emulator)
