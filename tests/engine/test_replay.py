"""Quarantine replay rebuilds what is not a queue row from its source."""

from sqlalchemy import select

from attentive_sync.engine.replay import rederive
from attentive_sync.sources.schema import audience_members
from attentive_sync.store.types import utcnow


def test_backfill_member_becomes_an_enter_delta_and_notice_claim_is_released(runtime):
    store = runtime.store
    with runtime.source.connect() as conn:
        member = conn.scalar(
            select(audience_members.c.customer_id).where(audience_members.c.audience_slug == "vip")
        )
    store.quarantine.add(
        "backfill", f"initial|vip|{member}", "invalid_phone", "phone", customer_id=member
    )
    store.quarantine.add("backfill", "initial|vip|999999", "invalid_phone", "x", customer_id=9)
    store.notices.claim("reward_reminder", 7, "2026-10-01", "e1", now=utcnow())
    store.quarantine.add("notice", "reward_reminder:2026-10-01:7", "job_failed", "x", customer_id=7)
    store.quarantine.add("notice", "profile:9", "job_failed", "x", customer_id=9)
    outcome = store.quarantine.replay()
    done = rederive(store, runtime.source, outcome.to_rederive)
    assert done == {
        "deltas_enqueued": 1,
        "no_longer_members": 1,
        "notices_released": 1,
        "profiles_left_to_next_event": 1,
    }
    (delta,) = store.deltas.lease(10, 60, "t")
    assert (delta.audience, delta.customer_id, delta.action) == ("vip", member, "enter")
    assert store.notices.claim("reward_reminder", 7, "2026-10-01", "e1", now=utcnow())
    assert store.quarantine.replay().to_rederive == ()
