"""Changes a brand makes to its own loyalty tables, in SQL, as the derived-events tests see them."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import Engine, text

from attentive_sync.engine.delivery.collaborators import direct_waiter, thread_pool_sender
from attentive_sync.engine.derived import run_loyalty_changes
from attentive_sync.engine.loyalty.relay import EventsConfig, thread_deliverer
from attentive_sync.engine.report import Report
from attentive_sync.engine.runtime import Runtime
from attentive_sync.sources.schema import points_ledger, referrals


def execute(engine: Engine, sql: str, **params: object) -> None:
    with engine.begin() as conn:
        conn.execute(text(sql), params)


def scalar(engine: Engine, sql: str, **params: object) -> object:
    with engine.connect() as conn:
        return conn.execute(text(sql), params).scalar()


def enable(engine: Engine, approaching: int | None = 100) -> None:
    execute(
        engine,
        "UPDATE program_settings SET derived_events_enabled = :yes,"
        " approaching_tier_points = :points WHERE id = 1",
        yes=True,
        points=approaching,
    )


def reachable(engine: Engine, count: int, where: str = "1 = 1") -> list[int]:
    """Customers the events can reach (an email and a client id; no phone to validate)."""
    with engine.begin() as conn:
        ids = [
            int(row[0])
            for row in conn.execute(
                text(
                    "SELECT customer_id FROM customers WHERE email IS NOT NULL"
                    f" AND client_user_id IS NOT NULL AND ({where}) ORDER BY customer_id"
                    " LIMIT :n"
                ),
                {"n": count},
            )
        ]
        for cid in ids:
            conn.execute(
                text("UPDATE customers SET phone = NULL WHERE customer_id = :c"), {"c": cid}
            )
    assert len(ids) == count, f"the seeded program has too few customers with {where}"
    return ids


def balance(engine: Engine, customer_id: int) -> int:
    return int(
        scalar(
            engine,
            "SELECT COALESCE(SUM(points), 0) FROM points_ledger"
            " WHERE customer_id = :c AND status = 'approved'",
            c=customer_id,
        )
        or 0
    )


def add_ledger(engine: Engine, customer_id: int, points: int, **extra: object) -> int:
    """Append an approved ledger row (earned when positive, spent when negative)."""
    entry = int(scalar(engine, "SELECT COALESCE(MAX(entry_id), 0) + 1 FROM points_ledger") or 1)
    now = datetime.now(timezone.utc)
    row = {
        "entry_id": entry,
        "customer_id": customer_id,
        "points": points,
        "kind": "earned" if points > 0 else "spent",
        "status": "approved",
        "created_at": now,
        "approved_at": now,
        **extra,
    }
    with engine.begin() as conn:
        conn.execute(points_ledger.insert().values(**row))
    return entry


def add_referral(engine: Engine, referral_id: int, referrer: int, **extra: object) -> None:
    now = datetime.now(timezone.utc)
    row = {
        "referral_id": referral_id,
        "referrer_id": referrer,
        "points_awarded": 250,
        "created_at": now,
        "completed_at": now,
        **extra,
    }
    with engine.begin() as conn:
        conn.execute(referrals.insert().values(**row))


def derive_and_relay(
    runtime: Runtime,
    config,
    events: EventsConfig | None = None,
    *,
    send_current_state: bool = False,
    now: datetime | None = None,
) -> Report:
    collaborators = (
        thread_deliverer(runtime, 4),
        thread_pool_sender(runtime, "derive-test", 2),
        direct_waiter(runtime, 5.0),
    )
    return run_loyalty_changes(
        runtime,
        config,
        events or EventsConfig(),
        "derive-test",
        collaborators,
        send_current_state=send_current_state,
        now=now,
    )
