"""Loyalty data and intake commands.

attentive-sync db seed --customers N --seed S    a deterministic demo/benchmark program
attentive-sync data load FILE...                 the reference tables from CSV or Parquet
attentive-sync intake serve                      the signed HTTP intake
attentive-sync events ingest FILE.jsonl          load webhook envelopes from a file
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from rich.table import Table
from sqlalchemy.exc import SQLAlchemyError

from attentive_sync.cli._common import command_group, console, err_console, fail
from attentive_sync.settings import SyncSettings
from attentive_sync.sources.errors import SourceError
from attentive_sync.store.errors import StoreError

Url = Annotated[
    str | None,
    typer.Option("--url", help="Database URL (default: ATTENTIVE_SYNC_DB_URL)."),
]


def _url(url: str | None) -> str:
    return url or SyncSettings().db_url


def _database_error(exc: SQLAlchemyError) -> str:
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
    return f"database error: {reason}"


def _parse_now(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        fail(f"--now {value!r} is not an ISO date or datetime (e.g. 2025-06-01)", code=2)
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def seed(
    customers: Annotated[int, typer.Option("--customers", min=1, help="How many customers.")],
    seed_value: Annotated[int, typer.Option("--seed", help="Same seed, same data.")] = 1,
    now: Annotated[
        str | None,
        typer.Option("--now", help="The seed's 'now' (ISO, UTC; default today)."),
    ] = None,
    replace: Annotated[
        bool, typer.Option("--replace", help="Clear existing loyalty data first.")
    ] = False,
    url: Url = None,
) -> None:
    """Create or upgrade the schema, then fill the loyalty tables with a generated program."""
    from attentive_sync.sources.seed import seed_program
    from attentive_sync.store.db import init_db, make_engine

    moment = _parse_now(now)
    try:
        init_db(_url(url))
        engine = make_engine(_url(url))
        try:
            with _progress() as progress:
                task = progress.add_task("seeding", total=customers)
                report = seed_program(
                    engine, customers, seed_value, now=moment, replace=replace,
                    on_progress=lambda done: progress.update(task, completed=done),
                )  # fmt: skip
        finally:
            engine.dispose()
    except (SourceError, StoreError) as exc:
        fail(str(exc))
    except SQLAlchemyError as exc:
        fail(_database_error(exc))
    table = Table("table", "rows", title=f"seeded in {report.seconds:.1f} s")
    table.add_row("customers", f"{report.customers:,}")
    table.add_row("audience_members", f"{report.audience_members:,}")
    table.add_row("points_ledger", f"{report.ledger_entries:,}")
    console.print(table)
    console.print(f"{report.rows:,} rows at [bold]{report.rows_per_second:,.0f}[/] rows/s")


def _progress() -> Progress:
    columns = (BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    return Progress(*columns, console=err_console, transient=True)


def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8086,
    url: Url = None,
) -> None:
    """Serve the signed HTTP intake for audience deltas and loyalty events."""
    import uvicorn

    from attentive_sync.intake import LoyaltyLionAdapter, create_intake_app
    from attentive_sync.store import Store
    from attentive_sync.store.db import make_engine

    settings = SyncSettings()
    secret = settings.intake_secret
    if secret is None or not secret.get_secret_value():
        fail("ATTENTIVE_SYNC_INTAKE_SECRET is not set: the intake accepts only signed requests")
    lion = settings.loyaltylion_secret
    platforms = [LoyaltyLionAdapter(lion)] if lion and lion.get_secret_value() else []
    if not platforms:
        err_console.print("ATTENTIVE_SYNC_LOYALTYLION_SECRET is not set: no POST /loyaltylion")
    try:
        store = Store.from_url(_url(url))
        store.check_schema()
        source = make_engine(settings.source_url, read_only=True) if settings.source_url else None
    except StoreError as exc:
        fail(str(exc))
    except SQLAlchemyError as exc:
        fail(_database_error(exc))
    if host not in ("127.0.0.1", "::1", "localhost"):
        err_console.print(f"[yellow]warning:[/] the intake is reachable on {host}, not loopback")
    app = create_intake_app(
        store,
        secret,
        platforms=platforms,
        source=source,
        match_by=settings.loyalty_match,
        program=settings.loyalty_program,
    )
    uvicorn.run(app, host=host, port=port, log_level="info")


def ingest(
    path: Annotated[Path, typer.Argument(help="JSON Lines file, one webhook envelope a line.")],
    url: Url = None,
) -> None:
    """Store every valid loyalty event in FILE; report bad lines by number and skip them."""
    from attentive_sync.intake import ingest_jsonl
    from attentive_sync.store import Store

    if not path.is_file():
        fail(f"{path} is not a file", code=2)
    try:
        with Store.from_url(_url(url)) as store:
            store.check_schema()
            report = ingest_jsonl(store.events, path)
    except (StoreError, UnicodeDecodeError) as exc:
        fail(str(exc))
    except SQLAlchemyError as exc:
        fail(_database_error(exc))
    for bad in report.invalid:
        err_console.print(f"[red]line {bad.line_number}:[/] {bad.reason}", highlight=False)
    console.print(
        f"stored {report.stored}, duplicates {report.duplicates}, invalid {len(report.invalid)}"
    )
    if report.invalid:
        raise typer.Exit(1)


SHOWN_ERRORS = 20


def load(
    files: Annotated[
        list[Path],
        typer.Argument(help="CSV or Parquet files, each named after its table (customers.csv)."),
    ],
    table: Annotated[
        str | None,
        typer.Option("--table", help="The table of a single file not named after it."),
    ] = None,
    url: Url = None,
) -> None:
    """Load the reference tables (customers, audiences, audience_members, points_ledger,
    rewards, tiers, program_settings, referrals) from files, parents first, in any order.

    A row that cannot be read is reported by line and column and skipped; the good rows are
    loaded. Loading again updates rows by primary key, never duplicates them.
    """
    from attentive_sync.sources.load import LoadError, load_file, plan_load
    from attentive_sync.store.db import init_db, make_engine

    try:
        plans = plan_load(files, table)
    except LoadError as exc:
        fail(str(exc), code=2)
    results = []
    try:
        init_db(_url(url))
        engine = make_engine(_url(url))
        try:
            for plan in plans:
                results.append(load_file(engine, plan))
        finally:
            engine.dispose()
    except (SourceError, StoreError) as exc:
        _show_loaded(results)
        fail(str(exc))
    except SQLAlchemyError as exc:
        _show_loaded(results)
        fail(_database_error(exc))
    _show_loaded(results)
    if any(result.errors for result in results):
        raise typer.Exit(1)


def _show_loaded(results: list) -> None:
    if not results:
        return
    summary = Table("file", "table", "rows", "loaded", "errors")
    for result in results:
        summary.add_row(
            str(result.path),
            result.table,
            f"{result.rows:,}",
            f"{result.loaded:,}",
            f"{len(result.errors):,}",
        )
    console.print(summary)
    for result in results:
        for error in result.errors[:SHOWN_ERRORS]:
            err_console.print(
                f"[red]{result.path} line {error.line}:[/] {error.message}",
                highlight=False,
                soft_wrap=True,
            )
        hidden = len(result.errors) - SHOWN_ERRORS
        if hidden > 0:
            err_console.print(f"{result.path}: {hidden:,} more row error(s) not shown")


def register(app: typer.Typer) -> None:
    command_group(app, "db", "Create, upgrade and fill the database.").command("seed")(seed)
    command_group(app, "intake", "The HTTP intake for deltas and events.").command("serve")(serve)
    command_group(app, "events", "Loyalty events.").command("ingest")(ingest)
    command_group(app, "data", "The loyalty program's data, from files.").command("load")(load)
