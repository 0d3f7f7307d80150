"""The state store commands, end to end on a SQLite file."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from attentive_sync.cli import store_cmds
from attentive_sync.store import NewDelta, Store
from attentive_sync.store.types import utcnow

runner = CliRunner()


@pytest.fixture
def cli() -> typer.Typer:
    app = typer.Typer()
    store_cmds.register(app)
    return app


def run(cli: typer.Typer, *args: str) -> tuple[int, str]:
    result = runner.invoke(cli, list(args))
    return result.exit_code, result.output


def test_db_init_creates_then_leaves_the_store_alone(cli: typer.Typer, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    for _ in range(2):
        code, out = run(cli, "db", "init", "--url", url)
        assert code == 0, out
        assert "State store ready" in out


def _define_audience(url: str, slug: str) -> None:
    from attentive_sync.sources.schema import audiences

    with Store.from_url(url) as store, store.engine.begin() as conn:
        conn.execute(audiences.insert().values(slug=slug, name=slug, created_at=utcnow()))


def test_deltas_enqueue_refuses_an_audience_the_source_does_not_define(
    cli: typer.Typer, sqlite_url: str
) -> None:
    _define_audience(sqlite_url, "vip")
    args = ["deltas", "enqueue", "--audience", "vipp", "--enter", "1", "--url", sqlite_url]
    code, out = run(cli, *args)
    assert code == 2 and "no audience 'vipp'; known audiences: vip" in out
    with Store.from_url(sqlite_url) as store:
        assert sum(store.deltas.counts().values()) == 0


def test_deltas_enqueue_then_queue_stats(cli: typer.Typer, sqlite_url: str) -> None:
    _define_audience(sqlite_url, "vip")
    args = [
        "deltas",
        "enqueue",
        "--audience",
        "vip",
        "--enter",
        "1",
        "--enter",
        "2",
        "--exit",
        "3",
        "--occurred-at",
        "2025-06-01T09:30:00+00:00",
        "--url",
        sqlite_url,
    ]
    assert run(cli, *args) == (0, "Queued 3 delta(s) for vip.\n")
    code, out = run(cli, *args)
    assert (code, "Queued 0 delta(s) for vip (3 already queued).") == (0, out.strip())

    code, out = run(cli, "queue", "stats", "--url", sqlite_url)
    assert code == 0
    deltas_line = next(line for line in out.splitlines() if "deltas" in line)
    assert deltas_line.split("│")[2].strip() == "3"


def test_an_explicit_key_makes_a_delta_idempotent(cli: typer.Typer, sqlite_url: str) -> None:
    _define_audience(sqlite_url, "vip")
    args = ["deltas", "enqueue", "--audience", "vip", "--enter", "1", "--key", "crm-77"]
    assert run(cli, *args, "--url", sqlite_url)[0] == 0
    assert "1 already queued" in run(cli, *args, "--url", sqlite_url)[1]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--audience", "vip"], "at least one --enter or --exit"),
        (["--audience", "vip", "--enter", "1", "--exit", "1"], "cannot both enter and exit"),
        (["--audience", "vip", "--enter", "1", "--enter", "2", "--key", "k"], "--key names one"),
        (["--audience", "vip", "--enter", "1", "--occurred-at", "2025-06-01T09:30"], "UTC offset"),
        (["--audience", "vip", "--enter", "1", "--occurred-at", "yesterday"], "ISO 8601"),
        (["--audience", "", "--enter", "1"], "audience must be"),
    ],
)
def test_enqueue_mistakes_get_one_line_and_exit_2(
    cli: typer.Typer, sqlite_url: str, args: list[str], message: str
) -> None:
    result = runner.invoke(cli, ["deltas", "enqueue", *args, "--url", sqlite_url])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_store_problems_are_reported_without_a_traceback(cli: typer.Typer, tmp_path: Path) -> None:
    code, out = run(cli, "queue", "stats", "--url", f"sqlite:///{tmp_path / 'empty.db'}")
    assert (code, "run `attentive-sync db init`" in out) == (1, True)
    code, out = run(cli, "queue", "stats", "--url", "mysql://u:hunter2@db/x")
    assert (code, "hunter2" in out, "Traceback" in out) == (2, False, False)


def test_quarantine_list_shows_masked_entries_and_replay_requeues(
    cli: typer.Typer, sqlite_url: str
) -> None:
    with Store.from_url(sqlite_url) as store:
        store.deltas.enqueue([NewDelta("vip", 5, "enter", utcnow())])
        rows = store.deltas.lease(1, 60, "w")
        store.deltas.quarantine(
            [r.seq for r in rows], "invalid_email", "bad jane@example.com", by="w"
        )

    code, out = run(cli, "quarantine", "list", "--url", sqlite_url)
    assert code == 0
    # The detail folds onto several lines at 80 columns; --json below shows it whole, masked.
    assert "invalid_email" in out and "j***@" in out
    assert "jane@example.com" not in out
    assert (
        "Nothing under other"
        in run(cli, "quarantine", "list", "--reason", "other", "--url", sqlite_url)[1]
    )

    code, out = run(cli, "quarantine", "list", "--json", "--url", sqlite_url)
    (entry,) = json.loads(out)
    assert code == 0 and entry["reason"] == "invalid_email"
    assert entry["detail"] == "bad j***@example.com" and entry["source_kind"] == "delta"
    code, out = run(cli, "quarantine", "list", "--csv", "--url", sqlite_url)
    (row,) = csv.DictReader(io.StringIO(out))
    assert code == 0 and row["reason"] == "invalid_email" and row["customer_id"] == "5"

    code, out = run(cli, "quarantine", "replay", "--url", sqlite_url)
    assert (code, out.strip()) == (0, "Requeued 1 record(s).")
    assert "The quarantine is empty." in run(cli, "quarantine", "list", "--url", sqlite_url)[1]
    with Store.from_url(sqlite_url) as store:
        assert store.deltas.counts()["pending"] == 1
