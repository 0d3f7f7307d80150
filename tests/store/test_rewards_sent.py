"""reward_available events Attentive accepted, noted in notices_sent for the reminder."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import func, select

from attentive_sync.store.tables import notices_sent

NOW = datetime(2026, 10, 10, tzinfo=timezone.utc)


def test_noting_sent_events_twice_stores_them_once(store):
    sent = [(1, "11", "ev-1"), (2, "12", "ev-2")]
    store.notices.record_sent("reward_available", sent, now=NOW)
    store.notices.record_sent("reward_available", [*sent, (1, "13", "ev-3")], now=NOW)
    store.notices.record_sent("reward_available", [], now=NOW)

    with store.engine.connect() as conn:
        rows = conn.execute(
            select(notices_sent.c.customer_id, notices_sent.c.event_id).order_by(
                notices_sent.c.event_id
            )
        ).all()
        total = conn.scalar(select(func.count()).select_from(notices_sent))
    assert [tuple(r) for r in rows] == [(1, "ev-1"), (2, "ev-2"), (1, "ev-3")]
    assert total == 3
    # A reminder claim of the same customer is another kind: both stand.
    assert store.notices.claim("reward_reminder", 1, "2026-10-01", now=NOW)
