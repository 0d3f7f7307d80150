"""Replaying quarantined records that are not queue rows: rebuild them from their source.

Queue rows (deltas, attribute writes, events) go back to their queue in the store. A
backfill record becomes an ``enter`` delta for each of its audiences the customer is
still in; a notice recorded before
attribute writes were queued gives back its claim, so the notice's next run sends it
again; such a profile update needs nothing, since the customer's next loyalty event
writes the profile afresh.
"""

from __future__ import annotations

from collections import Counter

from sqlalchemy import Engine

from attentive_sync.engine.delivery.kinds import BackfillMember, rebuilt_enters
from attentive_sync.store.facade import Store
from attentive_sync.store.quarantine import QuarantineEntry
from attentive_sync.store.types import utcnow

NOTICE_TOPICS = {"reward_reminder": "reward_reminder", "expiry_notice": "points_expiring"}


def rederive(store: Store, source: Engine, entries: tuple[QuarantineEntry, ...]) -> Counter[str]:
    """Rebuild ``entries`` (``source`` says who is a member now) and mark them replayed;
    returns what was done, by kind."""
    now, done = utcnow(), Counter[str]()
    deltas = []
    for entry in entries:
        if entry.source_kind == BackfillMember.source_kind:
            rebuilt = rebuilt_enters(source, entry.source_ref, f"replay:{entry.id}", now)
            deltas.extend(rebuilt)
            done["deltas_enqueued" if rebuilt else "no_longer_members"] += 1
        elif entry.source_kind == "profile" or entry.source_ref.startswith("profile:"):
            done["profiles_left_to_next_event"] += 1
        else:
            kind, period, customer = entry.source_ref.split(":", 2)
            store.notices.release(NOTICE_TOPICS.get(kind, kind), int(customer), period)
            done["notices_released"] += 1
    store.deltas.enqueue(deltas, now=now)
    store.quarantine.mark_replayed([entry.id for entry in entries], now=now)
    return done
