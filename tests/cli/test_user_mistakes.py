"""Every user mistake the README's paths invite: a short message that names the problem and the
fix, a non-zero exit, no traceback. Run as a person runs them, in a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pytest

from attentive_sync.emulator import EmulatorConfig, EmulatorServer
from attentive_sync.settings import DEMO_API_KEY
from attentive_sync.store import Store
from attentive_sync.store.records import NewDelta

CLI = str(Path(sys.executable).parent / "attentive-sync")
SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "program"
CONFIG = {"audiences": ["vip"], "identifier_mappings": {"phone": "phone", "email": "email"}}


@dataclass(frozen=True)
class Mistake:
    name: str
    args: tuple[str, ...]
    says: str
    env: tuple[tuple[str, str], ...] = ()
    code: int = 1
    seconds: float = 30.0  # at most this much longer than the first mistake (no work done)


def config(**changes: object) -> str:
    return "config=" + json.dumps({**CONFIG, **changes})


MISTAKES = [
    Mistake("unknown flow", ("run", "nope"), "unknown flow 'nope'"),
    Mistake(
        "unknown parameter",
        ("run", "audience-incremental", "-p", "nosuch=1"),
        "has no parameter nosuch; it takes: config",
    ),
    Mistake(
        "inline JSON that is not JSON",
        ("run", "audience-incremental", "-p", 'config={"audiences": [}'),
        "--param config: the value is not JSON",
        code=2,
    ),
    Mistake(
        "a moment that is not a date",
        ("run", "reward-reminder", "-p", "as_of=last-tuesday"),
        "parameter as_of",
    ),
    Mistake(
        "invalid configuration",
        ("run", "audience-backfill", "-p", config(audiences=["bad slug!"])),
        "audience slugs must be",
    ),
    Mistake(
        "unknown default_region",
        ("run", "audience-incremental", "-p", config(default_region="XX")),
        "default_region 'XX' is not a region phonenumbers knows",
    ),
    Mistake(
        "unknown audience in the configuration",
        ("run", "audience-incremental", "-p", config(audiences=["nosuch"])),
        "the source defines no audience ['nosuch']",
    ),
    Mistake(
        "state store in a folder that does not exist",
        ("run", "audience-incremental"),
        "cannot open the state store sqlite:////nonexistent/dir/state.db",
        env=(("ATTENTIVE_SYNC_DB_URL", "sqlite:////nonexistent/dir/state.db"),),
    ),
    Mistake(
        "database server that does not answer",
        ("run", "audience-incremental"),
        "cannot open the state store postgresql+psycopg://app:***@127.0.0.1:1/nosuch",
        env=(("ATTENTIVE_SYNC_DB_URL", "postgresql+psycopg://app:secret@127.0.0.1:1/nosuch"),),
    ),
    Mistake("uninitialised state store", ("run", "audience-incremental"), "attentive-sync db init"),
    Mistake(
        "uninitialised state store, serving",
        ("serve", "--port", "4399"),
        "the state store is not initialised: run `attentive-sync db init`",
    ),
    Mistake(
        "wrong API key with deltas queued",
        ("run", "audience-incremental"),
        "Attentive rejected the API key (401)",
        env=(("ATTENTIVE_API_KEY", "not-the-key"),),
    ),
    Mistake(
        "no API key",
        ("run", "audience-incremental"),
        "no Attentive API key: set ATTENTIVE_API_KEY",
        env=(("ATTENTIVE_API_KEY", ""),),
    ),
    Mistake(
        "malformed base URL",
        ("run", "loyalty-events"),
        "ATTENTIVE_BASE_URL must be an http(s) URL",
        env=(("ATTENTIVE_BASE_URL", "notaurl"),),
    ),
    Mistake(
        "unreachable Attentive",
        ("run", "audience-incremental"),
        "GET http://127.0.0.1:1/v1/me: ConnectError",
        env=(("ATTENTIVE_BASE_URL", "http://127.0.0.1:1"),),
        seconds=15.0,
    ),
    Mistake(
        "derived events from another database",
        ("run", "loyalty-changes"),
        "derived loyalty events need the loyalty tables (or views) in the state store's",
    ),
    Mistake(
        "delta for an audience that does not exist",
        ("deltas", "enqueue", "--audience", "nosuch", "--enter", "1"),
        "the loyalty source defines no audience 'nosuch'; known audiences:",
        code=2,
    ),
    Mistake(
        "data load of a file that does not exist",
        ("data", "load", "custmers.csv"),
        "custmers.csv: no such file",
        code=2,
    ),
    Mistake(
        "data load into a table that does not exist",
        ("data", "load", str(SAMPLE / "tiers.csv"), "--table", "orders"),
        "'orders' is not a table of the reference schema",
        code=2,
    ),
    Mistake(
        "data load of a file whose columns are not its table's",
        ("data", "load", str(SAMPLE / "tiers.csv"), "--table", "rewards"),
        "column 'tier_id' is not a column of rewards",
    ),
]


@dataclass
class Outcome:
    code: int
    output: str
    seconds: float


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory, seeded_template) -> dict[str, Outcome]:
    """Every mistake, run at once (each in its own process) against one seeded store."""
    folder = tmp_path_factory.mktemp("mistakes")
    seeded = folder / "program.db"
    shutil.copyfile(seeded_template, seeded)
    store = Store.from_url(f"sqlite:///{seeded}")
    store.deltas.enqueue([NewDelta("vip", 1, "enter", datetime.now(timezone.utc))])
    with EmulatorServer(EmulatorConfig()) as emulator:
        base = {k: v for k, v in os.environ.items() if not k.startswith(("ATTENTIVE_", "PREFECT_"))}
        base.update(
            ATTENTIVE_SYNC_DB_URL=f"sqlite:///{seeded}",
            ATTENTIVE_BASE_URL=emulator.base_url,
            ATTENTIVE_API_KEY=DEMO_API_KEY,
            PREFECT_HOME=str(folder / "prefect"),
            COLUMNS="80",
        )
        uninitialised = f"sqlite:///{folder / 'empty.db'}"

        def run(mistake: Mistake) -> Outcome:
            env = base | dict(mistake.env)
            if mistake.name.startswith("uninitialised state store"):
                env["ATTENTIVE_SYNC_DB_URL"] = uninitialised
            if mistake.name == "derived events from another database":
                env["ATTENTIVE_SYNC_SOURCE_URL"] = f"sqlite:///{seeded_template}"
            started = time.monotonic()
            done = subprocess.run(
                [CLI, *mistake.args],
                env=env,
                capture_output=True,
                text=True,
                cwd=folder,
                timeout=600,
            )
            return Outcome(done.returncode, done.stdout + done.stderr, time.monotonic() - started)

        with ThreadPoolExecutor(max_workers=6) as pool:
            results = {m.name: o for m, o in zip(MISTAKES, pool.map(run, MISTAKES), strict=True)}
    leased = store.deltas.counts()
    results["_queue"] = Outcome(0, json.dumps(dict(leased)), 0.0)
    return results


@pytest.mark.parametrize("mistake", MISTAKES, ids=lambda m: m.name)
def test_a_mistake_is_a_short_message_and_a_non_zero_exit(mistake: Mistake, outcomes):
    outcome = outcomes[mistake.name]
    lines = [line for line in outcome.output.splitlines() if line.strip()]
    assert outcome.code == mistake.code, outcome.output
    assert "Traceback" not in outcome.output, outcome.output
    assert mistake.says in " ".join(lines), outcome.output
    # The message itself, plus at most one line of context (a retry warning).
    assert len(lines) <= 2, outcome.output
    # Giving up is prompt: measured against a command that loads the flows and fails before
    # any work (so a loaded machine slows both alike), a mistake never waits out retries or
    # timeouts. (A misspelt flow name is answered before the flows load: not a baseline.)
    baseline = outcomes["unknown parameter"].seconds
    assert outcome.seconds - baseline < mistake.seconds, f"{outcome.seconds:.1f}s, {baseline:.1f}s"


def test_a_refused_key_leaves_the_queued_deltas_untouched(outcomes):
    counts = json.loads(outcomes["_queue"].output)
    assert counts.get("leased", 0) == 0 and counts.get("pending", 0) == 1, counts
