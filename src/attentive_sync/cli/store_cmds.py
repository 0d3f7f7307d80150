"""State store commands.

attentive-sync db init [--url]                       create or upgrade the state store
attentive-sync quarantine list [--reason] [--limit] [--json|--csv]  what was parked, and why
attentive-sync quarantine replay [--reason]          give parked records another chance
attentive-sync deltas enqueue --audience SLUG --enter ID --exit ID [--key] [--occurred-at]
attentive-sync queue stats                           rows per state in both queues
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated

import typer
from rich.table import Table
from sqlalchemy.exc import SQLAlchemyError

from attentive_sync.cli._common import command_group, console, fail
from attentive_sync.engine.replay import rederive
from attentive_sync.settings import SyncSettings
from attentive_sync.sources.loyalty import audience_slugs
from attentive_sync.store import NewDelta, Store, StoreError
from attentive_sync.store.db import make_engine
from attentive_sync.store.errors import InvalidRecordError, UnsupportedDatabaseError
from attentive_sync.store.types import utcnow

Url = Annotated[
    str | None,
    typer.Option("--url", help="State store URL (default: ATTENTIVE_SYNC_DB_URL)."),
]
Reason = Annotated[str | None, typer.Option("--reason", help="Only this reason code.")]


@contextmanager
def _store_errors() -> Iterator[None]:
    """Expected failures as one red line: bad input exits 2, an unusable store exits 1."""
    try:
        yield
    except (InvalidRecordError, UnsupportedDatabaseError) as exc:
        fail(str(exc), code=2)
    except StoreError as exc:
        fail(str(exc))
    except SQLAlchemyError as exc:
        # Only the driver's first line: later lines (DETAIL) may quote row values.
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        fail(f"state store error: {reason}")


@contextmanager
def _open(url: str | None) -> Iterator[Store]:
    with _store_errors(), Store.from_url(url) as store:
        store.check_schema()
        yield store


def db_init(url: Url = None) -> None:
    """Create the state store, or upgrade it in place (running it twice changes nothing)."""
    with _store_errors(), Store.from_url(url) as store:
        revision = store.init()
        where = store.engine.url.render_as_string(hide_password=True)
    console.print(f"State store ready at {where} (schema revision {revision}).")


def quarantine_list(
    reason: Reason = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Most entries shown.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array, for scripts.")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV with a header row.")] = False,
    url: Url = None,
) -> None:
    """Show open quarantine entries, oldest first. Phones and emails are masked."""
    if as_json and as_csv:
        fail("choose one of --json and --csv", code=2)
    with _open(url) as store:
        entries = store.quarantine.list(reason, limit)
        summary = store.quarantine.summary()
    rows = [
        {
            "id": e.id,
            "source_kind": e.source_kind,
            "source_ref": e.source_ref,
            "customer_id": e.customer_id,
            "reason": e.reason_code,
            "detail": e.detail,
            "since": e.created_at.isoformat(),
        }
        for e in entries
    ]
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    if as_csv:
        writer = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]) if rows else ["id"])
        writer.writeheader()
        writer.writerows(rows)
        return
    if not entries:
        console.print("The quarantine is empty." if reason is None else f"Nothing under {reason}.")
        return
    table = Table("id", "source", "customer", "since")
    # Never cut: the reason (a code, kept whole) and its detail (folded onto more lines) are
    # what a person acts on.
    widest = max(len(e.reason_code) for e in entries)
    table.add_column("reason", no_wrap=True, min_width=widest)
    table.add_column("detail", overflow="fold")
    for e in entries:
        source = f"{e.source_kind} {e.source_ref}"
        since = e.created_at.strftime("%Y-%m-%d %H:%M")
        table.add_row(str(e.id), source, str(e.customer_id or ""), since, e.reason_code, e.detail)
    console.print(table)
    totals = ", ".join(f"{code}: {count}" for code, count in summary.items())
    console.print(f"Open by reason: {totals}")


def quarantine_replay(reason: Reason = None, url: Url = None) -> None:
    """Send open queue entries back to pending; list what the engine must re-derive."""
    sync = SyncSettings()
    with _open(url) as store:
        outcome = store.quarantine.replay(reason)
        source = make_engine(sync.source_url or url or sync.db_url, read_only=True)
        try:
            rebuilt = rederive(store, source, outcome.to_rederive)
        finally:
            source.dispose()
    console.print(f"Requeued {len(outcome.requeued)} record(s).")
    if outcome.superseded:
        console.print(
            f"Closed {len(outcome.superseded)} delta(s) a later change of the same customer "
            "and audience already replaced."
        )
    for what, count in sorted(rebuilt.items()):
        console.print(f"Rebuilt from the source: {count} ({what.replace('_', ' ')}).")


def _parse_moment(value: str | None) -> datetime:
    if value is None:
        return utcnow()
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        fail(f"--occurred-at {value!r} is not an ISO 8601 datetime", code=2)
    if moment.tzinfo is None:
        fail("--occurred-at needs a UTC offset, e.g. 2025-06-01T09:30:00+00:00", code=2)
    return moment


def deltas_enqueue(
    audience: Annotated[str, typer.Option("--audience", help="Audience slug.")],
    enter: Annotated[
        list[int] | None, typer.Option("--enter", min=1, help="Customer id that entered.")
    ] = None,
    exit_: Annotated[
        list[int] | None, typer.Option("--exit", min=1, help="Customer id that exited.")
    ] = None,
    key: Annotated[
        str | None, typer.Option("--key", help="Idempotency key for a single delta.")
    ] = None,
    occurred_at: Annotated[
        str | None, typer.Option("--occurred-at", help="ISO 8601 time with offset; default now.")
    ] = None,
    url: Url = None,
) -> None:
    """Queue audience enter/exit changes (ids repeatable); a duplicate key is stored once."""
    enters, exits = enter or [], exit_ or []
    if not enters and not exits:
        fail("give at least one --enter or --exit customer id", code=2)
    if both := sorted(set(enters) & set(exits)):
        fail(f"customer(s) {', '.join(map(str, both))} cannot both enter and exit", code=2)
    if key is not None and len(enters) + len(exits) != 1:
        fail("--key names one delta: give exactly one --enter or --exit with it", code=2)
    moment = _parse_moment(occurred_at)
    with _store_errors():
        deltas = [NewDelta(audience, cid, "enter", moment, key) for cid in enters]
        deltas += [NewDelta(audience, cid, "exit", moment, key) for cid in exits]
    _check_audience(audience, url)
    with _open(url) as store:
        result = store.deltas.enqueue(deltas)
    console.print(
        f"Queued {result.stored} delta(s) for {audience}"
        + (f" ({result.duplicates} already queued)." if result.duplicates else ".")
    )


def _check_audience(audience: str, url: str | None) -> None:
    """A delta for an audience the source does not define would be dropped by every run."""
    settings = SyncSettings()
    with _store_errors():
        source = make_engine(settings.source_url or url or settings.db_url, read_only=True)
        try:
            known = audience_slugs(source)
        finally:
            source.dispose()
    if audience not in known:
        fail(
            f"the loyalty source defines no audience {audience!r}; "
            f"known audiences: {', '.join(known) or 'none'}",
            code=2,
        )


def queue_stats(url: Url = None) -> None:
    """Rows per state in the delta and event queues, plus open quarantine and jobs."""
    with _open(url) as store:
        counts = {"deltas": store.deltas.counts(), "events": store.events.counts()}
        quarantined = sum(store.quarantine.summary().values())
        unsettled = len(store.jobs.list_unsettled())
    states = list(counts["deltas"])
    table = Table("queue", *states, "total")
    for name, by_state in counts.items():
        cells = [str(by_state[state]) for state in states]
        table.add_row(name, *cells, str(sum(by_state.values())))
    console.print(table)
    console.print(f"Open quarantine entries: {quarantined}. Unsettled bulk jobs: {unsettled}.")


def register(app: typer.Typer) -> None:
    """Attach the state store commands; ``db`` is shared with the data commands."""
    command_group(app, "db", "Create, upgrade and seed the databases.").command("init")(db_init)
    quarantine = command_group(app, "quarantine", "Inspect and replay quarantined records.")
    quarantine.command("list")(quarantine_list)
    quarantine.command("replay")(quarantine_replay)
    command_group(app, "deltas", "Queue audience changes.").command("enqueue")(deltas_enqueue)
    command_group(app, "queue", "Look at the delta and event queues.").command("stats")(queue_stats)
