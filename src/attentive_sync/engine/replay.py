"""Replaying quarantined records that are not queue rows: rebuild them from their source.

A backfill member becomes an ``enter`` delta, which the incremental flow sends; a computed
notice gives back its claim, so the notice's next run sends it again; a profile update
needs nothing, since the customer's next loyalty event writes the profile afresh.
"""

from __future__ import annotations

from collections import Counter

from attentive_sync.store.facade import Store
from attentive_sync.store.quarantine import QuarantineEntry
from attentive_sync.store.records import NewDelta
from attentive_sync.store.types import utcnow

NOTICE_TOPICS = {"reward_reminder": "reward_reminder", "expiry_notice": "points_expiring"}


def rederive(store: Store, entries: tuple[QuarantineEntry, ...]) -> Counter[str]:
    """Rebuild ``entries`` and mark them replayed; returns what was done, by kind."""
    now, done = utcnow(), Counter[str]()
    deltas = []
    for entry in entries:
        if entry.source_kind == "backfill":
            _, audience, customer = entry.source_ref.rsplit("|", 2)
            key = f"replay:{entry.id}"
            deltas.append(NewDelta(audience, int(customer), "enter", now, key))
            done["deltas_enqueued"] += 1
        elif entry.source_ref.startswith("profile:"):
            done["profiles_left_to_next_event"] += 1
        else:
            kind, period, customer = entry.source_ref.split(":", 2)
            store.notices.release(NOTICE_TOPICS.get(kind, kind), int(customer), period)
            done["notices_released"] += 1
    store.deltas.enqueue(deltas, now=now)
    store.quarantine.mark_replayed([entry.id for entry in entries], now=now)
    return done
