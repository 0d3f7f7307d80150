"""Soak: every fault at once, workers SIGKILLed at random; does Attentive end up right?

    .venv/bin/python -m benchmarks.soak                       # SQLite, then PostgreSQL
    .venv/bin/python -m benchmarks.soak --store sqlite --duration 60 --kills 10
    .venv/bin/python -m benchmarks.soak --store postgres --pg-url postgresql+psycopg://...

Not a test: run by hand; it takes a few minutes per store. For each store it

1. seeds a loyalty program (``seed_program``) into a fresh store (a SQLite file under
   ``.bench/``, or a new PostgreSQL schema dropped afterwards) and makes an audience
   ``soak_members`` of half of the customers it can check (unique identifiers, a client
   user id to find them by at the emulator);
2. starts ``attentive-sync emulator`` in its own process on a loopback port with 20 % 5xx,
   10 % FAILED jobs, 20 % slow jobs, 5 % dropped connections and 2 % lost responses, and a
   429 storm every 20 s through ``POST /_emulator/faults``;
3. runs worker processes (``benchmarks._soak_worker``) that repeat the flows' work: the
   audience backfill (a new run key each time one completes, so a backfill is always in
   flight while deltas for its members arrive), the audience incremental (two workers) and
   the loyalty events relay with profile attributes;
4. produces, over ``--duration`` seconds, ``--deltas`` enter/exit deltas (changing
   ``audience_members`` first, so the source holds the truth) and ``--events`` loyalty
   events, about 40 % of them tier changes written to ``customers.tier`` first, so the
   profile attributes change too; meanwhile ``--kills`` SIGKILLs hit random workers, each
   restarted a moment later;
5. stops the faults and the kills, lets the workers drain (until every queue row is done or
   quarantined and every job settled, at most ``--drain-seconds``), stops them, and
   compares the emulator with the source.

It prints what went in, what was lost (the source's final value for a customer and
attribute is not at the emulator and the record is not quarantined; an event not at the
emulator), wrong final values (the emulator holds another value than the source last
said), stuck rows (queue rows neither done nor quarantined, jobs not settled or not
finished), events delivered more than once (the same ``externalEventId`` received again),
quarantined records by reason and the kills done, then whether its counts add up. The exit
status is non-zero when lost, wrong or stuck is non-zero, or the counts do not add up.
Duplicates are printed but do not fail the soak (``--fail-on-duplicates`` makes them): they
are inherent to at-least-once delivery when an accepted event's answer is lost or its
worker is killed before it acks, and Attentive stores an event once per
``externalEventId``, its idempotency key, as the emulator does. The table shows the
custom-event answers that were lost beside them.

Workers call the engine's run functions with thread-pool collaborators; ``--prefect`` has
them run the real Prefect flows instead, reporting to one Prefect server the soak starts on
a free loopback port (its home: ``.bench/soak-prefect-home``).

Logs (emulator, each worker, one JSON line per run that did something) go to
``.bench/soak-<store>-<time>/``; that directory, SQLite database included, is kept.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine, create_engine, delete, func, insert, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from attentive_sync.domain.errors import RecordRejected
from attentive_sync.domain.identifiers import build_identifiers
from attentive_sync.sources import schema
from attentive_sync.sources.seed import TIERS, seed_program
from benchmarks import _soak_worker as worker
from benchmarks._common import BENCH_DIR, ROOT, BenchError, Emulator, console, free_port

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PROGRAM_PREFIX = "loyalty"  # the relay's attribute prefix for the default program name
DELTA_PREFIX = "soak-delta-"
FINAL_STATES = frozenset({"done", "quarantined"})
AUDIENCE_KINDS = frozenset({"delta", "backfill"})
EVENT_TOPICS = ("activity_completed", "referral_complete")
TIER_NAMES = [name for name, _, _ in TIERS]
TIER_BOUNDS = {name: (low, high) for name, low, high in TIERS}
SEED_NOW = datetime(2026, 1, 15, tzinfo=timezone.utc)


# ---------------------------------------------------------------------------------------
# Stores and data
# ---------------------------------------------------------------------------------------


@contextmanager
def fresh_store(kind: str, run_dir: Path, pg_url: str) -> Iterator[str]:
    """The URL of an empty store: a SQLite file in the run directory, or a new PostgreSQL
    schema (selected through the connection's search_path) dropped afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{run_dir / 'soak.db'}"
        return
    name = f"soak_{uuid.uuid4().hex[:12]}"
    admin = create_engine(pg_url, poolclass=NullPool)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{name}"'))
    url = make_url(pg_url).update_query_dict({"options": f"-csearch_path={name}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
        admin.dispose()


def source_engine(db_url: str) -> Engine:
    """The store's own engine (SQLite: WAL, busy timeout, ``BEGIN IMMEDIATE`` writes)."""
    return worker.sql_engine(db_url)


def checkable_customers(engine: Engine) -> list[int]:
    """Customers the soak can follow: valid identifiers, a client user id to find them by
    at the emulator, and no phone or email shared with another of them (the emulator, like
    Attentive, would merge two such customers into one user)."""
    seen: Counter[str] = Counter()
    found: list[tuple[int, list[str]]] = []
    columns = schema.customers.c
    stmt = select(columns.customer_id, columns.phone, columns.email, columns.client_user_id)
    with engine.connect() as conn:
        for cid, phone, email, client_user_id in conn.execute(stmt.order_by(columns.customer_id)):
            if not client_user_id:
                continue
            try:
                ids = build_identifiers(
                    {"phone": phone, "email": email, "clientUserId": client_user_id}
                )
            except (RecordRejected, ValueError):
                continue
            keys = [f"{k}={v}" for k, v in ids.to_wire().items()]
            seen.update(keys)
            found.append((cid, keys))
    return [cid for cid, keys in found if all(seen[k] == 1 for k in keys)]


def build_program(db_url: str, customers: int, rng: random.Random) -> list[int]:
    """Seed the program and the soak's audience; returns the customers the soak follows."""
    worker.init_store(db_url)
    engine = source_engine(db_url)
    try:
        seed_program(engine, customers, seed=rng.randrange(1 << 30), now=SEED_NOW)
        followed = checkable_customers(engine)
        members = sorted(rng.sample(followed, len(followed) // 2))
        now = datetime.now(timezone.utc)
        with engine.begin() as conn:
            conn.execute(
                insert(schema.audiences),
                {"slug": worker.AUDIENCE, "name": "Soak members", "created_at": now},
            )
            conn.execute(
                insert(schema.audience_members),
                [
                    {"audience_slug": worker.AUDIENCE, "customer_id": c, "joined_at": now}
                    for c in members
                ],
            )
    finally:
        engine.dispose()
    return followed


# ---------------------------------------------------------------------------------------
# The producer: source change first, then the queued record that tells the engine about it
# ---------------------------------------------------------------------------------------


@dataclass
class Produced:
    deltas: int = 0
    enters: int = 0
    exits: int = 0
    events: int = 0
    tier_changes: int = 0
    errors: list[str] = field(default_factory=list)


class Producer(threading.Thread):
    def __init__(
        self, db_url: str, hot: list[int], deltas: int, events: int, seconds: float, seed: int
    ) -> None:
        super().__init__(name="soak-producer", daemon=True)
        self.db_url, self.hot, self.seconds = db_url, hot, seconds
        self.plan = ["delta"] * deltas + ["event"] * events
        self.rng = random.Random(seed)
        self.rng.shuffle(self.plan)
        self.produced = Produced()
        self.stop = threading.Event()

    def run(self) -> None:
        engine, enqueuer = source_engine(self.db_url), worker.Enqueuer(self.db_url)
        interval = self.seconds / max(1, len(self.plan))
        started = time.monotonic()
        try:
            for n, what in enumerate(self.plan):
                if self.stop.wait(max(0.0, started + n * interval - time.monotonic())):
                    break
                customer = self.rng.choice(self.hot)
                try:
                    if what == "delta":
                        self._delta(engine, enqueuer, customer, n)
                    else:
                        self._event(engine, enqueuer, customer, n)
                except Exception as exc:  # a busy database: counted, and the soak goes on
                    self.produced.errors.append(f"{type(exc).__name__}: {exc}"[:300])
        finally:
            enqueuer.close()
            engine.dispose()

    def _delta(self, engine: Engine, enqueuer: worker.Enqueuer, customer: int, n: int) -> None:
        members = schema.audience_members
        mine = (members.c.audience_slug == worker.AUDIENCE) & (members.c.customer_id == customer)
        now = datetime.now(timezone.utc)
        with engine.begin() as conn:
            member = conn.scalar(select(func.count()).select_from(members).where(mine))
            if member:
                conn.execute(delete(members).where(mine))
            else:
                conn.execute(
                    insert(members),
                    {"audience_slug": worker.AUDIENCE, "customer_id": customer, "joined_at": now},
                )
        action = "exit" if member else "enter"
        enqueuer.deltas([worker.Delta(f"{DELTA_PREFIX}{n}", customer, action, now)])
        self.produced.deltas += 1
        if member:
            self.produced.exits += 1
        else:
            self.produced.enters += 1

    def _event(self, engine: Engine, enqueuer: worker.Enqueuer, customer: int, n: int) -> None:
        now = datetime.now(timezone.utc)
        if self.rng.random() < 0.4:
            customers = schema.customers
            with engine.begin() as conn:
                mine = customers.c.customer_id == customer
                old = conn.scalar(select(customers.c.tier).where(mine))
                new = self.rng.choice([t for t in TIER_NAMES if t != old])
                conn.execute(
                    update(customers).where(customers.c.customer_id == customer).values(tier=new)
                )
            up = old is None or TIER_NAMES.index(new) > TIER_NAMES.index(old)
            low, high = TIER_BOUNDS[new]
            payload = {
                "previous_tier": old or "Bronze",
                "new_tier": new,
                "tier_lower_bound": low,
                "tier_upper_bound": high,
            }
            if payload["previous_tier"] == new:
                payload["previous_tier"] = "Silver" if new == "Bronze" else "Bronze"
            topic = "tier_upgraded" if up else "tier_downgraded"
            self.produced.tier_changes += 1
        else:
            topic = self.rng.choice(EVENT_TOPICS)
            payload = (
                {"rule_name": "Follow on Instagram", "points_awarded": 50}
                if topic == "activity_completed"
                else {"referred_customer": "Sam", "points_awarded": 200}
            )
        event = worker.Event(f"soak-event-{n}", topic, customer, now, payload)
        enqueuer.events([event])
        self.produced.events += 1


# ---------------------------------------------------------------------------------------
# Workers: started, SIGKILLed at random, restarted
# ---------------------------------------------------------------------------------------


@dataclass
class Slot:
    flow: str
    index: int
    proc: subprocess.Popen[bytes] | None = None
    restart_at: float | None = None
    starts: int = 0


class Workers:
    """One slot per worker; a supervisor thread restarts any worker that died."""

    def __init__(
        self,
        flows: list[str],
        command: Callable[[str], list[str]],
        run_dir: Path,
        env: dict[str, str] | None = None,
    ):
        self.slots = [Slot(flow, i) for i, flow in enumerate(flows)]
        self.command, self.run_dir = command, run_dir
        self.env = dict(os.environ, **env) if env else None
        self.kills: Counter[str] = Counter()
        self.restarts = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._supervise, name="soak-workers", daemon=True)

    def start(self) -> None:
        for slot in self.slots:
            self._spawn(slot)
        self._thread.start()

    def _spawn(self, slot: Slot) -> None:
        log = self.run_dir / f"worker-{slot.flow}-{slot.index}.log"
        with log.open("ab") as out:
            slot.proc = subprocess.Popen(
                self.command(slot.flow), stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
                env=self.env, start_new_session=True,
            )  # fmt: skip
        slot.starts += 1
        slot.restart_at = None

    def _supervise(self) -> None:
        while not self._stop.wait(0.2):
            with self._lock:
                for slot in self.slots:
                    if slot.proc is None or slot.proc.poll() is None:
                        continue
                    if slot.restart_at is None:
                        slot.restart_at = time.monotonic() + random.uniform(0.2, 1.5)
                    elif time.monotonic() >= slot.restart_at:
                        self.restarts += 1
                        self._spawn(slot)

    def kill_one(self, rng: random.Random) -> str | None:
        """SIGKILL a random running worker (its whole session); returns its flow."""
        with self._lock:
            running = [s for s in self.slots if s.proc is not None and s.proc.poll() is None]
            if not running:
                return None
            slot = rng.choice(running)
            assert slot.proc is not None
            os.killpg(slot.proc.pid, signal.SIGKILL)
            slot.proc.wait()
            self.kills[slot.flow] += 1
            return slot.flow

    def stop(self, grace: float = 60.0) -> None:
        """Ask every worker to stop after its run (``stop`` file); SIGKILL the late ones."""
        (self.run_dir / "stop").touch()
        self._stop.set()
        self._thread.join()
        deadline = time.monotonic() + grace
        for slot in self.slots:
            if slot.proc is None:
                continue
            try:
                slot.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(slot.proc.pid, signal.SIGKILL)
                slot.proc.wait()

    def failed_runs(self) -> Counter[str]:
        """Runs that raised, by flow, from the workers' logs."""
        failed: Counter[str] = Counter()
        for log in self.run_dir.glob("worker-*.log"):
            for line in log.read_text(errors="replace").splitlines():
                if line.startswith("{") and '"error"' in line:
                    failed[json.loads(line)["flow"]] += 1
        return failed


@contextmanager
def prefect_server(run_dir: Path) -> Iterator[dict[str, str]]:
    """``prefect server start`` on a free loopback port, in its own session; yields the
    environment the workers need to report their flow runs to it."""
    home = BENCH_DIR / "soak-prefect-home"
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {"PREFECT_HOME": str(home), "PREFECT_API_URL": f"http://127.0.0.1:{port}/api"}
    command = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1"]
    log = run_dir / "soak-prefect-server.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [*command, "--port", str(port)], stdout=out, stderr=subprocess.STDOUT,
            env=dict(os.environ, **env), start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while True:
            if server.poll() is not None:
                raise BenchError(f"the Prefect server exited; see {log}")
            try:
                if httpx.get(f"{env['PREFECT_API_URL']}/health", timeout=2).is_success:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise BenchError("the Prefect server did not answer within 120 s")
            time.sleep(1)
        console.print(f"{time.strftime('%X')} Prefect server on port {port} (home: {home})")
        yield env
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


# ---------------------------------------------------------------------------------------
# The emulator, seen from outside
# ---------------------------------------------------------------------------------------


class Inspector:
    def __init__(self, base_url: str) -> None:
        self.http = httpx.Client(base_url=f"{base_url}/_emulator", timeout=60)

    def faults(self, **changes: float) -> dict[str, Any]:
        return self.http.post("/faults", json=changes).raise_for_status().json()

    def stats(self) -> dict[str, Any]:
        return self.http.get("/stats").raise_for_status().json()

    def unfinished_jobs(self) -> int:
        jobs = self.http.get("/jobs").raise_for_status().json()["jobs"]
        return sum(1 for job in jobs if job["finishedAt"] is None)

    def users(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        while True:
            page = self.http.get("/users", params={"offset": len(found), "limit": 1000})
            batch = page.raise_for_status().json()["users"]
            found += batch
            if len(batch) < 1000:
                return found

    def events(self) -> list[dict[str, Any]]:
        return self.http.get("/events").raise_for_status().json()["events"]

    def close(self) -> None:
        self.http.close()


def storms(inspector: Inspector, every: float, seconds: float, stop: threading.Event) -> int:
    count = 0
    while not stop.wait(every):
        try:
            inspector.faults(storm_seconds=seconds)
            count += 1
        except httpx.HTTPError:
            pass
    return count


# ---------------------------------------------------------------------------------------
# The verdict
# ---------------------------------------------------------------------------------------


@dataclass
class Check:
    """Expected values compared with the emulator: each one ok, lost, wrong or excused."""

    name: str
    ok: int = 0
    lost: int = 0
    wrong: int = 0
    excused: int = 0
    examples: list[str] = field(default_factory=list)
    wrong_kinds: Counter[str] = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return self.ok + self.lost + self.wrong + self.excused

    def judge(self, label: str, expected: Any, present: bool, actual: Any, excused: bool) -> None:
        if present and _same(expected, actual):
            self.ok += 1
            return
        if excused:
            self.excused += 1
            return
        if not present:
            self.lost += 1
            outcome = "missing"
        else:
            self.wrong += 1
            outcome = f"{actual!r}"
            self.wrong_kinds[f"{expected!r} -> {actual!r}"] += 1
        if len(self.examples) < 5:
            self.examples.append(f"{label}: source {expected!r}, emulator {outcome}")


def _same(expected: Any, actual: Any) -> bool:
    if isinstance(expected, bool) or isinstance(actual, bool):
        return expected is actual
    if isinstance(expected, int | float) and isinstance(actual, int | float):
        return float(expected) == float(actual)
    return bool(expected == actual)


def source_truth(db_url: str, followed: list[int]) -> dict[str, Any]:
    engine = source_engine(db_url)
    c, m, ledger = schema.customers.c, schema.audience_members.c, schema.points_ledger.c
    try:
        with engine.connect() as conn:
            members = set(
                conn.scalars(select(m.customer_id).where(m.audience_slug == worker.AUDIENCE))
            )
            profiles = {
                row.customer_id: row
                for row in conn.execute(
                    select(c.customer_id, c.client_user_id, c.tier, c.insights_segment)
                )
            }
            balances = dict(
                conn.execute(
                    select(ledger.customer_id, func.sum(ledger.points))
                    .where(ledger.status == "approved")
                    .group_by(ledger.customer_id)
                ).all()
            )
    finally:
        engine.dispose()
    return {"members": members, "profiles": profiles, "balances": balances, "followed": followed}


def _text(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def verdict(
    truth: dict[str, Any],
    outcome: dict[str, Any],
    users: list[dict[str, Any]],
    events: list[dict[str, Any]],
    initial_members: set[int],
) -> dict[str, Any]:
    by_cuid = {u["identifiers"].get("clientUserId"): u for u in users}
    customs = {
        cid: (by_cuid.get(row.client_user_id) or {}).get("attributes", {}).get("custom")
        for cid, row in truth["profiles"].items()
    }
    parked: dict[str, set[int]] = {}
    for kind, _reason, cid, _ref in outcome["quarantine"]:
        parked.setdefault(kind, set()).add(cid)
    excused_audience = set().union(*(parked.get(k, set()) for k in AUDIENCE_KINDS))

    # Audience flags: every customer the source ever put in the audience or sent a delta for.
    delta_customers = {int(k) for k in outcome["delta_customers"]}
    audience = Check("audience flag")
    for cid in sorted(initial_members | delta_customers):
        custom = customs.get(cid)
        present = custom is not None and worker.AUDIENCE in custom
        actual = custom.get(worker.AUDIENCE) if present else None
        expected = cid in truth["members"]
        audience.judge(f"customer {cid}", expected, present, actual, cid in excused_audience)

    # Profile attributes of every customer with an event that was not quarantined.
    event_states, event_customers = outcome["events"], outcome["event_customers"]
    profiled = {cid for eid, cid in event_customers.items() if event_states[eid] != "quarantined"}
    profile = Check("profile attributes")
    tier = Check("of which loyalty tier")
    for cid in sorted(profiled):
        row, custom = truth["profiles"][cid], customs.get(cid) or {}
        expected = {
            f"{PROGRAM_PREFIX}_tier": _text(row.tier),
            f"{PROGRAM_PREFIX}_points_balance": int(truth["balances"].get(cid) or 0),
            f"{PROGRAM_PREFIX}_insights_segment": _text(row.insights_segment),
        }
        for name, value in expected.items():
            if value is None:
                continue
            label = f"customer {cid} {name}"
            excused = cid in parked.get("profile", set())
            for check in (profile, tier) if name.endswith("_tier") else (profile,):
                check.judge(label, value, name in custom, custom.get(name), excused)

    # Events: every queued event once at the emulator, unless quarantined.
    received = {e.get("externalEventId"): e for e in events}
    ours = set(event_states)
    delivered = [received[eid] for eid in ours if eid in received]
    lost_events = sorted(
        eid for eid, state in event_states.items() if eid not in received and state != "quarantined"
    )
    quarantined_undelivered = sum(
        1 for eid, state in event_states.items() if eid not in received and state == "quarantined"
    )
    duplicated = [e for e in delivered if e["deliveries"] > 1]
    return {
        "audience": audience,
        "profile": profile,
        "tier": tier,
        "events_delivered": len(delivered),
        "events_lost": len(lost_events),
        "events_lost_examples": lost_events[:5],
        "events_quarantined_undelivered": quarantined_undelivered,
        "events_foreign": len(set(received) - ours),
        "duplicated_events": len(duplicated),
        "extra_deliveries": sum(e["deliveries"] - 1 for e in duplicated),
    }


# ---------------------------------------------------------------------------------------
# One soak on one store
# ---------------------------------------------------------------------------------------


def emulator_options(args: argparse.Namespace) -> list[str]:
    return [
        "--error-rate", str(args.error_rate), "--fail-job-rate", str(args.fail_job_rate),
        "--slow-job-rate", str(args.slow_job_rate), "--slow-job-delay", str(args.slow_job_delay),
        "--drop-rate", str(args.drop_rate), "--lose-response-rate", str(args.lose_response_rate),
        "--seed", str(args.seed),
    ]  # fmt: skip


def _states(states: dict[str, str]) -> Counter[str]:
    return Counter(states.values())


def _settled(outcome: dict[str, Any]) -> bool:
    states = (
        *outcome["deltas"].values(),
        *outcome["events"].values(),
        *outcome["writes"].values(),
    )
    open_rows = [state for state in states if state not in FINAL_STATES]
    return not open_rows and not sum(outcome["unsettled_jobs"].values())


def soak(store: str, args: argparse.Namespace, prefect_env: dict[str, str]) -> dict[str, Any]:
    run_dir = BENCH_DIR / f"soak-{store}-{time.strftime('%Y%m%d-%H%M%S')}"
    run_dir.mkdir(parents=True)
    rng = random.Random(args.seed)
    with fresh_store(store, run_dir, args.pg_url) as db_url:
        console.print(f"{time.strftime('%X')} {store}: seeding {args.customers:,} customers")
        followed = build_program(db_url, args.customers, rng)
        engine = source_engine(db_url)
        with engine.connect() as conn:
            initial = set(
                conn.scalars(
                    select(schema.audience_members.c.customer_id).where(
                        schema.audience_members.c.audience_slug == worker.AUDIENCE
                    )
                )
            )
        engine.dispose()
        hot = rng.sample(followed, min(args.hot, len(followed)))
        console.print(
            f"{time.strftime('%X')} {store}: {len(followed):,} customers followed, "
            f"{len(initial):,} in the audience, deltas and events for {len(hot):,} of them "
            f"(logs: {run_dir})"
        )
        with Emulator(args.job_delay, run_dir / "emulator.log", emulator_options(args)) as emu:
            env = prefect_env and prefect_env | worker.settings_env(
                db_url, emu.base_url, args.lease_seconds
            )
            result = _run(store, args, db_url, emu.base_url, run_dir, hot, rng, env)
            inspector = Inspector(emu.base_url)
            emu_stats, users, events = inspector.stats(), inspector.users(), inspector.events()
            inspector.close()
        outcome = worker.store_outcome(db_url)
        outcome["delta_customers"] = result.pop("delta_customers")
        outcome["event_customers"] = result.pop("event_customers")
        truth = source_truth(db_url, followed)
    result |= verdict(truth, outcome, users, events, initial)
    result["outcome"] = outcome
    result["emulator_stats"] = emu_stats
    result["run_dir"] = str(run_dir)
    return result


def _run(
    store: str,
    args: argparse.Namespace,
    db_url: str,
    base_url: str,
    run_dir: Path,
    hot: list[int],
    rng: random.Random,
    env: dict[str, str],
) -> dict[str, Any]:
    def command(flow: str) -> list[str]:
        return [
            sys.executable, "-m", "benchmarks._soak_worker", "--flow", flow, "--db", db_url,
            "--base-url", base_url, "--run-dir", str(run_dir),
            "--lease-seconds", str(args.lease_seconds), *(["--prefect"] if env else []),
        ]  # fmt: skip

    flows = ["backfill"] + ["incremental"] * args.incremental_workers
    flows += ["relay"] * args.relay_workers
    workers = Workers(flows, command, run_dir, env)
    inspector = Inspector(base_url)
    seed = rng.randrange(1 << 30)
    producer = Producer(db_url, hot, args.deltas, args.events, args.duration, seed)
    storm_stop, storm_count = threading.Event(), [0]
    storm_thread = threading.Thread(
        target=lambda: storm_count.__setitem__(
            0, storms(inspector, args.storm_every, args.storm_seconds, storm_stop)
        ),
        daemon=True,
    )
    kill_times = sorted(rng.uniform(3.0, args.duration) for _ in range(args.kills))
    started = time.monotonic()
    workers.start()
    producer.start()
    storm_thread.start()
    try:
        for at in kill_times:
            time.sleep(max(0.0, started + at - time.monotonic()))
            workers.kill_one(rng)
        time.sleep(max(0.0, started + args.duration - time.monotonic()))
        producer.join(60)
        producer.stop.set()
        storm_stop.set()
        storm_thread.join()
        chaos = time.monotonic() - started
        inspector.faults(
            error_rate=0, fail_job_rate=0, slow_job_rate=0, drop_rate=0, lose_response_rate=0
        )
        (run_dir / "draining").touch()
        console.print(
            f"{time.strftime('%X')} {store}: faults off after {chaos:.0f} s, "
            f"{sum(workers.kills.values())} kills; draining (at most {args.drain_seconds:.0f} s)"
        )
        drain_started = time.monotonic()
        drained = False
        while time.monotonic() - drain_started < args.drain_seconds:
            time.sleep(3.0)
            if _settled(worker.store_outcome(db_url)) and inspector.unfinished_jobs() == 0:
                drained = True
                break
        drain_seconds = time.monotonic() - drain_started
    finally:
        producer.stop.set()
        storm_stop.set()
        workers.stop()
    deadline = time.monotonic() + args.slow_job_delay + 5
    while inspector.unfinished_jobs() and time.monotonic() < deadline:
        time.sleep(0.5)
    unfinished = inspector.unfinished_jobs()
    inspector.close()
    produced = producer.produced
    console.print(
        f"{time.strftime('%X')} {store}: drained={drained} in {drain_seconds:.0f} s; "
        f"{produced.deltas} deltas and {produced.events} events produced"
    )
    return {
        "store": store,
        "produced": produced,
        "kills": dict(workers.kills),
        "restarts": workers.restarts,
        "failed_runs": dict(workers.failed_runs()),
        "storms": storm_count[0],
        "chaos_seconds": chaos,
        "drain_seconds": drain_seconds,
        "drained": drained,
        "emulator_unfinished_jobs": unfinished,
        "delta_customers": _delta_customers(db_url),
        "event_customers": _event_customers(db_url),
    }


def _delta_customers(db_url: str) -> set[int]:
    engine = source_engine(db_url)
    try:
        with engine.connect() as conn:
            return set(conn.scalars(text("SELECT DISTINCT customer_id FROM audience_deltas")))
    finally:
        engine.dispose()


def _event_customers(db_url: str) -> dict[str, int]:
    engine = source_engine(db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT event_id, customer_id FROM loyalty_events"))
            return dict(rows.all())
    finally:
        engine.dispose()


# ---------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------


def _fmt(counter: dict[str, int]) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in sorted(counter.items())) or "0"


def report(r: dict[str, Any], fail_on_duplicates: bool) -> bool:
    """Print one store's figures; returns whether the soak passed."""
    outcome, produced, stats = r["outcome"], r["produced"], r["emulator_stats"]
    deltas, events = _states(outcome["deltas"]), _states(outcome["events"])
    ours = sum(1 for key in outcome["deltas"] if key.startswith(DELTA_PREFIX))
    engine_queued = len(outcome["deltas"]) - ours
    stuck_deltas = sum(v for k, v in deltas.items() if k not in FINAL_STATES)
    stuck_events = sum(v for k, v in events.items() if k not in FINAL_STATES)
    writes = _states(outcome["writes"])
    stuck_writes = sum(v for k, v in writes.items() if k not in FINAL_STATES)
    unsettled = sum(outcome["unsettled_jobs"].values())
    stuck = stuck_deltas + stuck_events + stuck_writes + unsettled
    stuck += r["emulator_unfinished_jobs"]
    audience, profile, tier = r["audience"], r["profile"], r["tier"]
    lost = audience.lost + profile.lost + r["events_lost"]
    wrong = audience.wrong + profile.wrong
    duplicates = r["duplicated_events"]
    quarantined = Counter(f"{kind}/{reason}" for kind, reason, _, _ in outcome["quarantine"])
    answers = stats.get("by_endpoint", {})
    lost_answers = {
        name: counts.get("lost_response", 0)
        for name, counts in answers.items()
        if counts.get("lost_response")
    }
    identities = [
        ("deltas in = the soak's delta rows stored", produced.deltas, ours),
        ("delta rows = deltas in + rows the engine queued itself", sum(deltas.values()),
         produced.deltas + engine_queued),
        ("events in = rows stored", produced.events, sum(events.values())),
        ("deltas in = enters + exits", produced.deltas, produced.enters + produced.exits),
        ("events in = delivered + lost + quarantined undelivered", produced.events,
         r["events_delivered"] + r["events_lost"] + r["events_quarantined_undelivered"]),
        ("audience flags checked = ok + lost + wrong + excused", audience.total,
         audience.ok + audience.lost + audience.wrong + audience.excused),
        ("profile values checked = ok + lost + wrong + excused", profile.total,
         profile.ok + profile.lost + profile.wrong + profile.excused),
        ("events at the emulator not produced by the soak", 0, r["events_foreign"]),
        ("producer errors", 0, len(produced.errors)),
    ]  # fmt: skip
    add_up = all(a == b for _, a, b in identities)
    rows: list[tuple[str, object]] = [
        ("chaos phase / drain", f"{r['chaos_seconds']:.0f} s / {r['drain_seconds']:.0f} s"
         f" ({'drained' if r['drained'] else 'NOT drained: time limit'})"),
        ("kills (SIGKILL) by flow", f"{sum(r['kills'].values())} ({_fmt(r['kills'])})"),
        ("worker restarts / runs that raised", f"{r['restarts']} / {_fmt(r['failed_runs'])}"),
        ("429 storms started", r["storms"]),
        ("deltas in (enter / exit)",
         f"{produced.deltas:,} ({produced.enters:,} / {produced.exits:,})"),
        ("events in (tier changes)", f"{produced.events:,} ({produced.tier_changes:,})"),
        ("delta rows by state (rows the engine queued itself)",
         f"{_fmt(deltas)} ({engine_queued:,})"),
        ("event rows by state", _fmt(events)),
        ("audience flags checked: ok / lost / wrong / excused",
         f"{audience.total:,}: {audience.ok:,} / {audience.lost:,} / {audience.wrong:,} / "
         f"{audience.excused:,}"),
        ("  wrong audience flags, source -> emulator", _fmt(audience.wrong_kinds)),
        ("profile values checked: ok / lost / wrong / excused",
         f"{profile.total:,}: {profile.ok:,} / {profile.lost:,} / {profile.wrong:,} / "
         f"{profile.excused:,}"),
        ("  of which loyalty tier: ok / lost / wrong",
         f"{tier.total:,}: {tier.ok:,} / {tier.lost:,} / {tier.wrong:,}"),
        ("events delivered / lost / quarantined",
         f"{r['events_delivered']:,} / {r['events_lost']:,} / {events.get('quarantined', 0):,}"),
        ("LOST (audience + profile + events)", lost),
        ("WRONG final values (audience + profile)", wrong),
        ("STUCK: delta / event / write rows, jobs unsettled / unfinished at emulator",
         f"{stuck} ({stuck_deltas} / {stuck_events} / {stuck_writes} / {unsettled} / "
         f"{r['emulator_unfinished_jobs']})"),
        ("DUPLICATES: events delivered more than once (extra deliveries)",
         f"{duplicates} ({r['extra_deliveries']})"),
        ("answers lost by the emulator, by endpoint", _fmt(lost_answers)),
        ("quarantined by kind/reason", _fmt(dict(quarantined))),
        ("emulator: requests / 5xx injected / 429 / dropped",
         f"{stats['requests']:,} / {stats['injected_errors']:,} / {stats['throttled']:,} / "
         f"{stats['dropped']:,}"),
        ("emulator jobs by status", _fmt(stats["jobs"])),
        ("counts add up", "yes" if add_up else "NO"),
    ]  # fmt: skip
    table = Table(title=f"Soak on {r['store']}", show_header=False, title_justify="left")
    table.add_column("figure", style="bold")
    table.add_column("value", justify="right")
    for name, value in rows:
        table.add_row(name, value if isinstance(value, str) else f"{value:,}")
    out = Console(width=130)
    out.print(table)
    for name, expected, got in identities:
        if expected != got:
            out.print(f"[red]does not add up:[/] {name}: {expected} vs {got}")
    for check in (audience, profile):
        for example in check.examples:
            out.print(f"  {check.name}: {example}")
    for eid in r["events_lost_examples"]:
        out.print(f"  event lost: {eid} ({outcome['events'][eid]})")
    for error in produced.errors[:3]:
        out.print(f"  producer error: {error}")
    failed = lost or wrong or stuck or (duplicates and fail_on_duplicates) or not add_up
    return not failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--store", choices=("sqlite", "postgres", "both"), default="both")
    add("--pg-url", default=os.environ.get("ATTENTIVE_SYNC_TEST_PG_URL", DEFAULT_PG_URL))
    add("--customers", type=int, default=4000, help="customers seeded")
    add("--hot", type=int, default=400, help="customers the deltas and events go to")
    add("--deltas", type=int, default=700)
    add("--events", type=int, default=300)
    add("--duration", type=float, default=150.0, help="seconds of faults, kills and producing")
    add("--kills", type=int, default=24, help="SIGKILLs spread over the duration")
    add("--drain-seconds", type=float, default=180.0)
    add("--incremental-workers", type=int, default=2)
    add("--relay-workers", type=int, default=1)
    add("--lease-seconds", type=float, default=30.0, help="queue lease of the workers")
    add("--job-delay", type=float, default=0.3)
    add("--error-rate", type=float, default=0.2)
    add("--fail-job-rate", type=float, default=0.1)
    add("--slow-job-rate", type=float, default=0.2)
    add("--slow-job-delay", type=float, default=5.0)
    add("--drop-rate", type=float, default=0.05)
    add("--lose-response-rate", type=float, default=0.02)
    add("--storm-every", type=float, default=20.0, help="seconds between 429 storms")
    add("--storm-seconds", type=float, default=2.0)
    add("--seed", type=int, default=1)
    add("--fail-on-duplicates", action="store_true", help="fail when an event arrived twice")
    add("--prefect", action="store_true", help="workers run the Prefect flows (one server)")
    args = parser.parse_args(argv)
    if args.deltas < 0 or args.events < 0 or args.duration <= 0 or args.hot < 1:
        parser.error("--deltas and --events must be >= 0, --duration > 0, --hot >= 1")
    stores = ("sqlite", "postgres") if args.store == "both" else (args.store,)
    passed = True
    try:
        with ExitStack() as stack:
            prefect_env: dict[str, str] = {}
            if args.prefect:
                BENCH_DIR.mkdir(exist_ok=True)
                prefect_env = stack.enter_context(prefect_server(BENCH_DIR))
            for store in stores:
                passed &= report(soak(store, args, prefect_env), args.fail_on_duplicates)
    except BenchError as exc:
        console.print(f"[red]{exc}[/red]")
        return 2
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
