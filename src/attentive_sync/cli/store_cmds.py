"""State store commands.

attentive-sync db init [--url]                       create or upgrade the state store
attentive-sync quarantine list [--reason] [--limit]  what was parked, and why (PII masked)
attentive-sync quarantine replay [--reason]          give parked records another chance
attentive-sync deltas enqueue --audience SLUG --enter ID --exit ID [--key] [--occurred-at]
attentive-sync queue stats                           rows per state in both queues
"""

from __future__ import annotations

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
from attentive_sync.store import NewDelta, Store, StoreError, make_engine
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
    url: Url = None,
) -> None:
    """Show open quarantine entries, oldest first. Phones and emails are masked."""
    with _open(url) as store:
        entries = store.quarantine.list(reason, limit)
        summary = store.quarantine.summary()
    if not entries:
        console.print("The quarantine is empty." if reason is None else f"Nothing under {reason}.")
        return
    table = Table("id", "source", "customer", "reason", "detail", "since")
    for e in entries:
        source = f"{e.source_kind} {e.source_ref}"
        since = e.created_at.strftime("%Y-%m-%d %H:%M")
        table.add_row(str(e.id), source, str(e.customer_id or ""), e.reason_code, e.detail, since)
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
    with _open(url) as store:
        result = store.deltas.enqueue(deltas)
    console.print(
        f"Queued {result.stored} delta(s) for {audience}"
        + (f" ({result.duplicates} already queued)." if result.duplicates else ".")
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
