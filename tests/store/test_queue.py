"""Queue semantics, run against every back end (``store`` is parametrised)."""

from __future__ import annotations

import pytest

from attentive_sync.store import InvalidRecordError, NewDelta, Store
from attentive_sync.store.queue import set_inflight
from attentive_sync.store.tables import audience_deltas
from tests.store.helpers import T0, at, delta, event


def inflight(store: Store, seqs: list[int], job_id: str) -> None:
    """Mark leased rows as carried by ``job_id`` (what recording a job does to them)."""
    with store.engine.begin() as conn:
        set_inflight(conn, audience_deltas, seqs, job_id)


def seqs(rows) -> list[int]:
    return [row.seq for row in rows]


def test_enqueue_stores_a_key_once_and_counts_duplicates(store: Store) -> None:
    first = store.deltas.enqueue([delta(1), delta(2), delta(1)], now=T0)
    again = store.deltas.enqueue([delta(1), delta(2), delta(3)], now=T0)

    assert (first.stored, first.duplicates) == (2, 1)
    assert (again.stored, again.duplicates) == (1, 2)
    assert store.deltas.counts()["pending"] == 3


def test_explicit_delta_key_wins_over_the_derived_one(store: Store) -> None:
    keyed = [NewDelta("vip", 1, "enter", T0, "k-1"), NewDelta("vip", 2, "exit", T0, "k-1")]

    assert store.deltas.enqueue(keyed, now=T0).stored == 1
    assert [row.delta_key for row in store.deltas.lease(10, 60, "w", now=at(1))] == ["k-1"]


def test_events_are_idempotent_on_event_id_and_keep_their_payload(store: Store) -> None:
    assert store.events.enqueue([event("e1"), event("e2"), event("e1")], now=T0).stored == 2
    assert store.events.enqueue([event("e2")], now=T0).duplicates == 1

    rows = store.events.lease(10, 60, "w", now=at(1))
    assert [row.event_id for row in rows] == ["e1", "e2"]
    assert rows[0].payload == {"reward": "10% off", "email": "jane@example.com"}
    assert rows[0].occurred_at == T0


def test_lease_takes_rows_in_queue_order_up_to_the_limit(store: Store) -> None:
    store.deltas.enqueue([delta(c) for c in (5, 3, 9, 1, 7)], now=T0)

    first = store.deltas.lease(3, 60, "w", now=at(1))
    second = store.deltas.lease(3, 60, "w", now=at(1))

    assert [row.customer_id for row in first] == [5, 3, 9]
    assert [row.customer_id for row in second] == [1, 7]
    assert store.deltas.lease(3, 60, "w", now=at(1)) == []
    assert {row.state for row in first} == {"leased"}
    assert first[0].lease_expires_at == at(61)


def test_an_expired_lease_is_taken_again_by_another_worker(store: Store) -> None:
    store.deltas.enqueue([delta(1), delta(2)], now=T0)
    taken = store.deltas.lease(10, 60, "a", now=T0)

    assert store.deltas.lease(10, 60, "b", now=at(59)) == []
    retaken = store.deltas.lease(10, 60, "b", now=at(60))
    assert seqs(retaken) == seqs(taken)
    assert {row.lease_owner for row in store.deltas.get(seqs(taken))} == {"b"}


def test_renew_extends_the_owners_leases_only_and_keeps_their_customers_held(
    store: Store,
) -> None:
    store.deltas.enqueue([delta(1), delta(2), delta(1, "exit", minute=1), delta(3)], now=T0)
    mine = store.deltas.lease(2, 60, "a", now=T0)  # customers 1 and 2
    theirs = store.deltas.lease(1, 60, "b", now=T0)  # customer 3 (1's exit is held back)
    assert [row.customer_id for row in theirs] == [3]

    assert store.deltas.renew("a", 60, now=at(50)) == 2
    assert {row.lease_expires_at for row in store.deltas.get(seqs(mine))} == {at(110)}
    assert store.deltas.get(seqs(theirs))[0].lease_expires_at == at(60), "b's lease untouched"
    # At 100 a's leases, renewed, still hold customers 1 and 2; b's ran out at 60.
    assert [row.customer_id for row in store.deltas.lease(10, 60, "c", now=at(100))] == [3]
    # A row no longer leased (done) is not renewed; one taken by another run is not a's.
    store.deltas.ack([mine[0].seq], by="a")
    retaken = store.deltas.lease(10, 60, "c", now=at(111))
    assert [(row.customer_id, row.action) for row in retaken] == [(2, "enter"), (1, "exit")]
    assert store.deltas.renew("a", 60, now=at(112)) == 0
    with pytest.raises(ValueError, match="lease_seconds"):
        store.deltas.renew("a", 0)


def test_inflight_holds_back_that_customer_only(store: Store) -> None:
    store.deltas.enqueue([delta(1), delta(2), delta(1, "exit", minute=1), delta(3)], now=T0)
    enter_1, enter_2 = store.deltas.lease(2, 60, "w", now=T0)
    inflight(store, [enter_1.seq, enter_2.seq], "job-1")

    # Customer 1's exit waits for the job carrying their enter; customer 3 does not.
    assert [row.customer_id for row in store.deltas.lease(10, 60, "w", now=at(600))] == [3]
    store.deltas.ack([enter_1.seq], by="job-1")
    later = store.deltas.lease(10, 60, "w", now=at(601))
    assert [(row.customer_id, row.action) for row in later] == [(1, "exit")]


def test_an_unexpired_lease_holds_back_the_customer_for_other_workers(store: Store) -> None:
    store.deltas.enqueue([delta(1), delta(2), delta(1, "exit", minute=1)], now=T0)
    assert [row.customer_id for row in store.deltas.lease(1, 60, "a", now=T0)] == [1]

    other = store.deltas.lease(10, 60, "b", now=at(1))
    assert [row.customer_id for row in other] == [2]


def test_one_lease_takes_consecutive_changes_of_a_customer_in_order(store: Store) -> None:
    store.deltas.enqueue([delta(1), delta(1, "exit", minute=1), delta(1, minute=2)], now=T0)

    rows = store.deltas.lease(10, 60, "w", now=at(1))
    assert [row.action for row in rows] == ["enter", "exit", "enter"]


def test_nack_counts_the_attempt_and_retries_no_sooner_than_asked(store: Store) -> None:
    store.deltas.enqueue([delta(1), delta(1, "exit", minute=1), delta(2)], now=T0)
    first = store.deltas.lease(1, 60, "w", now=T0)
    store.deltas.nack(
        seqs(first), "429 from Attentive for jane@example.com", retry_at=at(300), by="w"
    )

    (row,) = store.deltas.get(seqs(first))
    assert (row.state, row.attempts, row.next_attempt_at) == ("pending", 1, at(300))
    assert "jane@example.com" not in (row.last_error or "")
    # Until the retry is due, customer 1's later change waits behind it.
    assert [r.customer_id for r in store.deltas.lease(10, 60, "w", now=at(299))] == [2]
    due = store.deltas.lease(10, 60, "w", now=at(300))
    assert [(r.customer_id, r.action) for r in due] == [(1, "enter"), (1, "exit")]


def test_ack_and_nack_only_touch_rows_that_are_held(store: Store) -> None:
    store.deltas.enqueue([delta(1), delta(2)], now=T0)
    (held,) = store.deltas.lease(1, 60, "w", now=T0)
    pending_seq = held.seq + 1

    assert store.deltas.ack([held.seq, pending_seq], by="someone-else") == 0
    assert store.deltas.ack([held.seq, pending_seq], by="w") == 1
    assert store.deltas.nack([held.seq, pending_seq], "late", retry_at=at(5), by="w") == 0
    assert store.deltas.counts() == {
        "pending": 1,
        "leased": 0,
        "inflight": 0,
        "done": 1,
        "quarantined": 0,
    }


def test_quarantine_masks_parks_and_replay_requeues(store: Store) -> None:
    store.deltas.enqueue([delta(1), delta(1, audience="gold", minute=1)], now=T0)
    bad = store.deltas.lease(1, 60, "w", now=T0)
    parked = store.deltas.quarantine(
        seqs(bad), "invalid_phone", "phone +14155552671 is not E.164", by="w"
    )

    assert parked == 1
    (entry,) = store.quarantine.list()
    assert (entry.source_kind, entry.source_ref, entry.customer_id) == ("delta", str(bad[0].seq), 1)
    assert "4155552671" not in entry.detail
    assert entry.payload_masked["audience"] == "vip"
    assert store.quarantine.summary() == {"invalid_phone": 1}
    # A parked row no longer holds its customer back.
    assert [r.audience for r in store.deltas.lease(10, 60, "w", now=at(1))] == ["gold"]

    outcome = store.quarantine.replay("invalid_phone", now=at(2))
    assert [e.id for e in outcome.requeued] == [entry.id]
    (row,) = store.deltas.get(seqs(bad))
    assert (row.state, row.attempts, row.next_attempt_at) == ("pending", 0, at(2))
    assert store.quarantine.list() == []
    assert store.quarantine.list(include_replayed=True)[0].replayed_at == at(2)


def test_quarantine_keeps_the_callers_payload_masked(store: Store) -> None:
    store.events.enqueue([event("e1")], now=T0)
    rows = store.events.lease(1, 60, "w", now=T0)
    payload = {rows[0].seq: {"identifiers": {"phone": "+14155552671", "email": "jo@ex.com"}}}

    store.events.quarantine(seqs(rows), "rejected", "400 from Attentive", by="w", payloads=payload)

    (entry,) = store.quarantine.list()
    masked = {"identifiers": {"phone": "+*********71", "email": "j***@ex.com"}}
    assert entry.payload_masked == masked


def test_replay_leaves_a_delta_a_later_change_overtook(store: Store) -> None:
    store.deltas.enqueue([delta(1), delta(1, "exit", minute=1)], now=T0)
    enter, exit_ = store.deltas.lease(2, 60, "w", now=T0)
    store.deltas.quarantine([enter.seq], "invalid_phone", "bad phone", by="w")
    store.deltas.ack([exit_.seq], by="w")

    outcome = store.quarantine.replay(now=at(5))

    assert ([e.source_ref for e in outcome.superseded], outcome.requeued) == ([str(enter.seq)], ())
    assert store.deltas.get([enter.seq])[0].state == "quarantined"
    assert store.quarantine.list() == []


def test_a_replayed_row_waits_while_its_customer_has_a_newer_row_in_flight(
    store: Store,
) -> None:
    store.deltas.enqueue([delta(1), delta(1, audience="gold", minute=1)], now=T0)
    old = store.deltas.lease(1, 60, "w", now=T0)
    store.deltas.quarantine(seqs(old), "invalid_phone", "bad phone", by="w")
    newer = store.deltas.lease(1, 60, "w", now=at(1))
    inflight(store, seqs(newer), "job-1")

    store.quarantine.replay(now=at(2))
    assert store.deltas.lease(10, 60, "w", now=at(3)) == []
    store.deltas.ack(seqs(newer), by="job-1")
    assert seqs(store.deltas.lease(10, 60, "w", now=at(4))) == seqs(old)


def test_replay_hands_back_entries_the_engine_must_rederive(store: Store) -> None:
    store.quarantine.add("notice", "reminder:42:2025-06", "no_identifier", "x", customer_id=42)

    outcome = store.quarantine.replay()
    assert [e.source_ref for e in outcome.to_rederive] == ["reminder:42:2025-06"]
    assert len(store.quarantine.list()) == 1, "left open until the engine has re-derived it"
    assert store.quarantine.mark_replayed([outcome.to_rederive[0].id]) == 1
    assert store.quarantine.list() == []


def test_queue_rows_cannot_be_added_to_the_quarantine_directly(store: Store) -> None:
    with pytest.raises(InvalidRecordError, match="through their queue"):
        store.quarantine.add("delta", "1", "x", "y")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"action": "join"}, "action must be"),
        ({"customer_id": 0}, "positive integer"),
        ({"audience": ""}, "audience must be"),
        ({"occurred_at": T0.replace(tzinfo=None)}, "time zone"),
    ],
)
def test_bad_deltas_are_refused_with_a_reason(kwargs: dict, message: str) -> None:
    fields = {"audience": "vip", "customer_id": 1, "action": "enter", "occurred_at": T0, **kwargs}
    with pytest.raises(InvalidRecordError, match=message):
        NewDelta(**fields)


def test_lease_arguments_are_checked(store: Store) -> None:
    with pytest.raises(ValueError, match="limit"):
        store.deltas.lease(0, 60, "w")
    with pytest.raises(ValueError, match="lease_seconds"):
        store.deltas.lease(1, 0, "w")
    with pytest.raises(InvalidRecordError, match="naive"):
        store.deltas.lease(1, 60, "w", now=T0.replace(tzinfo=None))


def test_rows_queued_leased_are_their_producers_until_the_lease_runs_out(store: Store) -> None:
    store.events.enqueue([event("n-1", customer=7)], now=T0, lease=("notice-run", 60))
    assert store.events.lease(10, 60, "relay", now=at(1)) == []
    (seq,) = store.events.leased_by("notice-run")
    assert [row.seq for row in store.events.lease(10, 60, "relay", now=at(61))] == [seq]


def test_a_row_whose_lease_ran_out_is_no_longer_its_runs_to_send(store: Store) -> None:
    store.deltas.enqueue([delta(1)], now=T0)
    (row,) = store.deltas.lease(1, 60, "w", now=T0)
    assert store.deltas.owned([row.seq], "w", now=at(59)) == {row.seq}
    assert store.deltas.owned([row.seq], "w", now=at(60)) == set()
