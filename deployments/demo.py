"""`make demo`: every flow, end to end, against the local Attentive emulator on SQLite.

1. starts the emulator and the signed intake service on loopback;
2. creates the embedded SQLite state store and seeds a demo loyalty program;
3. runs audience-backfill, then queues enter/exit deltas and runs audience-incremental;
   then changes audience rows in SQL only and runs audience-incremental with
   ``changes_from: diff``, which finds the changes itself;
4. posts signed loyalty webhooks to the intake and runs loyalty-events;
4b. turns derived events on, changes tiers, segments, the ledger and referrals in SQL and
   runs loyalty-changes (a baseline, the changes, and a second run that sends nothing);
5. runs reward-reminder and expiry-notice (twice, to show nothing is sent twice);
6. prints what the emulator holds and the quarantine summary.

Everything lives under .demo/ in the current folder (deleted and rebuilt on each run).
Flows run in-process on Prefect's temporary local server unless PREFECT_API_URL points at
a running one.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import threading
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import uvicorn
from pydantic import SecretStr
from rich.console import Console
from rich.table import Table

from attentive_sync.emulator import EmulatorConfig, EmulatorServer
from attentive_sync.emulator.server import bind
from attentive_sync.intake.app import create_intake_app
from attentive_sync.intake.signing import signed_headers
from attentive_sync.masking import mask_email, mask_phone
from attentive_sync.settings import DEMO_API_KEY
from attentive_sync.sources.seed import seed_program
from attentive_sync.store import Store

WORKDIR = Path.cwd() / ".demo"
CUSTOMERS = 2_000
SECRET = SecretStr("demo-intake-secret")
console = Console()


def prepare_environment() -> str:
    shutil.rmtree(WORKDIR, ignore_errors=True)
    WORKDIR.mkdir()
    db_url = f"sqlite:///{WORKDIR / 'attentive_sync.db'}"
    os.environ.update(
        {
            "ATTENTIVE_SYNC_DB_URL": db_url,
            "ATTENTIVE_API_KEY": DEMO_API_KEY,
            "ATTENTIVE_SYNC_POLL_INTERVAL_SECONDS": "0.5",
            "PREFECT_HOME": str(WORKDIR / "prefect"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_LOGGING_LEVEL": os.environ.get("PREFECT_LOGGING_LEVEL", "WARNING"),
        }
    )
    return db_url


class IntakeThread:
    """The intake service on a loopback port, in a background thread."""

    def __init__(self, store: Store) -> None:
        app = create_intake_app(store, SECRET)
        self.socket = bind("127.0.0.1", 0)
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]})
        thread.daemon = True
        thread.start()
        while not self.server.started:
            threading.Event().wait(0.02)
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}"

    def post(self, path: str, payload: dict) -> httpx.Response:
        body = json.dumps(payload).encode()
        return httpx.post(f"{self.url}{path}", content=body, headers=signed_headers(SECRET, body))


def step(title: str) -> None:
    console.rule(f"[bold]{title}")


def run_flow(name: str, **params: object) -> dict[str, int]:
    from attentive_sync.flows.registry import FLOWS, default_parameters

    counts = FLOWS[name](**{**default_parameters(name), **params})
    table = Table(title=name, show_header=False)
    for key, value in counts.items():
        table.add_row(key, f"{value:,}")
    console.print(table)
    return counts


def default_config() -> dict:
    from attentive_sync.flows.registry import default_parameters

    return dict(default_parameters("audience-incremental")["config"])


def pick(store: Store, sql: str) -> list[int]:
    from sqlalchemy import text

    with store.engine.connect() as conn:
        return [row[0] for row in conn.execute(text(sql))]


def queue_deltas(intake: IntakeThread, store: Store) -> tuple[list[int], list[int]]:
    now = datetime.now(timezone.utc)
    leaving = pick(
        store,
        "SELECT customer_id FROM audience_members WHERE audience_slug='vip' "
        "AND customer_id IN (SELECT customer_id FROM customers WHERE email IS NOT NULL) "
        "ORDER BY customer_id LIMIT 3",
    )
    joining = pick(
        store,
        "SELECT customer_id FROM customers WHERE email IS NOT NULL AND customer_id "
        "NOT IN (SELECT customer_id FROM audience_members WHERE audience_slug='vip') "
        "ORDER BY customer_id LIMIT 3",
    )
    bad = pick(store, "SELECT customer_id FROM customers WHERE phone = '5551234' LIMIT 1")
    deltas = [
        {"audience": "vip", "customer_id": c, "action": "exit", "occurred_at": now.isoformat()}
        for c in leaving
    ]
    deltas += [
        {"audience": "vip", "customer_id": c, "action": "enter", "occurred_at": now.isoformat()}
        for c in joining + bad
    ]
    response = intake.post("/deltas", {"deltas": deltas})
    console.print(f"intake accepted {len(deltas)} deltas: HTTP {response.status_code}")
    # The producer keeps its own table in step, as a brand's system would.
    change_members(store, leave=leaving, join=joining + bad)
    return leaving, joining


def change_members(store: Store, *, leave: Sequence[int] = (), join: Sequence[int] = ()) -> None:
    from sqlalchemy import text

    with store.engine.begin() as conn:
        for cid in leave:
            conn.execute(
                text("DELETE FROM audience_members WHERE audience_slug='vip' AND customer_id=:c"),
                {"c": cid},
            )
        for cid in join:
            conn.execute(
                text(
                    "INSERT INTO audience_members (audience_slug, customer_id, joined_at) "
                    "VALUES ('vip', :c, CURRENT_TIMESTAMP)"
                ),
                {"c": cid},
            )


def change_rows_only(store: Store) -> tuple[list[int], list[int], list[int]]:
    """Audience changes made in SQL alone, with nothing queued: two members leave, two
    customers join, and one joins and leaves again before the next run."""
    leaving = pick(
        store,
        "SELECT customer_id FROM audience_members WHERE audience_slug='vip' "
        "AND customer_id IN (SELECT customer_id FROM customers WHERE email IS NOT NULL) "
        "ORDER BY customer_id DESC LIMIT 2",
    )
    joining = pick(
        store,
        "SELECT customer_id FROM customers WHERE email IS NOT NULL AND customer_id "
        "NOT IN (SELECT customer_id FROM audience_members WHERE audience_slug='vip') "
        "ORDER BY customer_id DESC LIMIT 3",
    )
    joining, passing = joining[:2], joining[2:]
    change_members(store, leave=leaving, join=joining + passing)
    change_members(store, leave=passing)
    console.print(
        f"in SQL: {len(leaving)} vip rows deleted, {len(joining)} inserted, "
        f"{len(passing)} inserted and deleted again; nothing queued"
    )
    return leaving, joining, passing


def post_events(intake: IntakeThread, store: Store) -> None:
    who = pick(
        store,
        "SELECT customer_id FROM customers WHERE email IS NOT NULL ORDER BY customer_id LIMIT 2",
    )
    now = datetime.now(timezone.utc).isoformat()
    rewards = [{"reward_id": 1, "title": "$5 off", "kind": "discount_voucher", "cost_points": 500}]
    payloads = {
        "tier_upgraded": {"previous_tier": "Silver", "new_tier": "Gold", "tier_lower_bound": 1500},
        "reward_available": {"available_rewards": rewards, "points_balance": 640},
        "referral_complete": {"referred_customer": "Sam", "points_awarded": 200},
        "activity_completed": {"rule_name": "Follow on Instagram", "points_awarded": 50},
        "moved_to_loyal": {"previous_segment": "Promising", "new_segment": "Loyal"},
        "reward_claimed": {
            "reward_title": "$5 off",
            "reward_type": "discount_voucher",
            "points_spent": 500,
            "voucher_code": "DEMO-5OFF",
        },
    }
    for n, (topic, payload) in enumerate(payloads.items()):
        envelope = {
            "id": f"demo-{n}",
            "topic": topic,
            "created_at": now,
            "customer_id": who[n % 2],
            "payload": payload,
        }
        intake.post("/events", envelope)
    duplicate = intake.post(
        "/events",
        {
            "id": "demo-0",
            "topic": "tier_upgraded",
            "created_at": now,
            "customer_id": who[0],
            "payload": payloads["tier_upgraded"],
        },
    )
    unsigned = httpx.post(f"{intake.url}/events", json={"id": "x"})
    console.print(
        f"posted {len(payloads)} signed events; a redelivery answered {duplicate.json()}; "
        f"an unsigned post answered HTTP {unsigned.status_code}"
    )


def change_program_in_sql(store: Store) -> None:
    """What a brand's own systems do to its tables; no webhook, no enqueue."""
    from sqlalchemy import text

    who = pick(
        store,
        "SELECT customer_id FROM customers WHERE email IS NOT NULL AND tier = 'Silver'"
        " ORDER BY customer_id DESC LIMIT 4",
    )
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")
    statements = [
        f"UPDATE customers SET tier = 'Gold' WHERE customer_id = {who[0]}",
        f"UPDATE customers SET tier = 'Bronze' WHERE customer_id = {who[1]}",
        f"UPDATE customers SET insights_segment = 'at_risk' WHERE customer_id = {who[2]}",
        "INSERT INTO points_ledger (entry_id, customer_id, points, kind, status, created_at,"
        " rule_name) SELECT MAX(entry_id) + 1, "
        f"{who[3]}, 75, 'earned', 'approved', '{now}', 'Wrote a review' FROM points_ledger",
        "INSERT INTO points_ledger (entry_id, customer_id, points, kind, status, created_at,"
        " reward_id, voucher_code) SELECT MAX(entry_id) + 1, "
        f"{who[0]}, -250, 'spent', 'approved', '{now}', 2, 'DEMO-15OFF' FROM points_ledger",
        "INSERT INTO referrals (referral_id, referrer_id, referred_name, points_awarded,"
        f" created_at, completed_at) VALUES (1, {who[2]}, 'Sam', 200, '{now}', '{now}')",
    ]
    with store.engine.begin() as conn:
        for statement in statements:
            console.print(f"[dim]{statement}")
            conn.execute(text(statement))


def show_derived(emulator: EmulatorServer) -> int:
    derived = [
        e
        for e in emulator.state.list_events()["events"]
        if e["externalEventId"].startswith("derived:")
    ]
    table = Table(title="Derived events Attentive (the emulator) received")
    for column in ("event type", "to", "properties"):
        table.add_column(column)
    for event in derived:
        email = (event.get("user") or {}).get("email") or ""
        properties = ", ".join(f"{k}={v}" for k, v in event["properties"].items())
        table.add_row(event["type"], mask_email(email), properties)
    console.print(table)
    return len(derived)


def show_members(
    emulator: EmulatorServer,
    store: Store,
    leaving: list[int],
    joining: list[int],
    passing: Sequence[int] = (),
) -> bool:
    from attentive_sync.sources.loyalty import load_customers

    table = Table(title="What Attentive (the emulator) holds for the changed customers")
    for column in ("customer", "email", "phone", "change", "vip"):
        table.add_column(column)
    ok = True
    changes = [(c, "exited vip", False) for c in leaving]
    changes += [(c, "entered vip", True) for c in joining]
    changes += [(c, "entered and left vip", None) for c in passing]
    for cid, change, expected in changes:
        (row,) = load_customers(store.engine, [cid])
        user = emulator.state.find_user(email=row["email"].strip())
        value = (user or {}).get("attributes", {}).get("custom", {}).get("vip")
        ok &= value is expected
        table.add_row(
            str(cid),
            mask_email(row["email"]),
            mask_phone(row["phone"] or ""),
            change,
            f"[{'green' if value is expected else 'red'}]{value}",
        )
    console.print(table)
    stats = emulator.state.stats()
    console.print(
        f"emulator: {stats['users']:,} users, {stats['events']} custom events, jobs {stats['jobs']}"
    )
    return ok


def show_quarantine(store: Store) -> None:
    table = Table(title="Quarantine (records that can never succeed, with their reason)")
    table.add_column("reason")
    table.add_column("records", justify="right")
    for reason, count in sorted(store.quarantine.summary().items()):
        table.add_row(reason, f"{count:,}")
    console.print(table)


def main() -> int:
    db_url = prepare_environment()
    with EmulatorServer(EmulatorConfig(job_delay=0.5)) as emulator:
        os.environ["ATTENTIVE_BASE_URL"] = emulator.base_url
        store = Store.from_url(db_url)
        step(f"State store and demo program ({CUSTOMERS:,} customers) in {WORKDIR.name}/")
        store.init()
        report = seed_program(store.engine, CUSTOMERS, seed=42)
        console.print(report)
        intake = IntakeThread(store)
        step("audience-backfill")
        run_flow("audience-backfill", wait_seconds=60)
        step("audience-incremental (after 3 exits, 3 enters and an unsendable phone)")
        leaving, joining = queue_deltas(intake, store)
        run_flow("audience-incremental", wait_seconds=30)
        step("audience-incremental with changes_from: diff (audience rows changed in SQL)")
        left, joined, passing = change_rows_only(store)
        config = {**default_config(), "changes_from": "diff"}
        diffed = run_flow("audience-incremental", config=config, wait_seconds=30)
        leaving, joining = leaving + left, joining + joined
        step("loyalty-events (signed webhooks through the intake)")
        post_events(intake, store)
        run_flow("loyalty-events", wait_seconds=30)
        step("loyalty-changes: events derived from the tables (first run: the baseline)")
        with store.engine.begin() as conn:
            conn.exec_driver_sql("UPDATE program_settings SET derived_events_enabled = 1")
        run_flow("loyalty-changes", wait_seconds=30)
        step("loyalty-changes after changes made in SQL, then once more")
        change_program_in_sql(store)
        run_flow("loyalty-changes", wait_seconds=30)
        received = show_derived(emulator)
        again = run_flow("loyalty-changes", wait_seconds=30)
        step("reward-reminder, run twice for the same interval")
        run_flow("reward-reminder", wait_seconds=60)
        second = run_flow("reward-reminder", wait_seconds=60)
        step("expiry-notice")
        run_flow("expiry-notice", as_of=(datetime.now(timezone.utc) + timedelta(days=20)).date())
        step("Result")
        ok = show_members(emulator, store, leaving, joining, passing)
        ok &= (diffed.get("diff_enters"), diffed.get("diff_exits")) == (len(joined), len(left))
        show_quarantine(store)
        ok &= second.get("claimed", 0) == 0
        ok &= received >= 6 and again.get("derived", 0) == 0
        intake.server.should_exit = True
    console.print("[bold green]demo complete" if ok else "[bold red]demo found a problem")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
