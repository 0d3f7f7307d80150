"""Audience changes derived from membership (``changes_from: diff | both``), end to end.

Each test changes ``audience_members`` in SQL, runs the incremental export against the
emulator, and asserts what Attentive holds and what the store says; nothing is enqueued
by hand unless the test is about the queue.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import pytest
from pydantic import ValidationError
from sqlalchemy import delete, func, insert, select
from support.program import CONFIG, CUSTOMERS, NOW, make_runtime

from attentive_sync.engine.audience import diff
from attentive_sync.engine.audience.export import run_backfill, run_incremental
from attentive_sync.engine.delivery.collaborators import direct_waiter, thread_pool_sender
from attentive_sync.engine.mapping import identifiers_for
from attentive_sync.engine.runtime import Runtime
from attentive_sync.sources.loyalty import load_customers, members_among
from attentive_sync.sources.schema import audience_members, customers
from attentive_sync.sources.seed import seed_program
from attentive_sync.store import init_db, make_engine
from attentive_sync.store.job_members import unsettled_members_in
from attentive_sync.store.records import NewDelta
from attentive_sync.store.tables import audience_deltas, audience_diffs
from tests.fixtures.stores import PG_SKIP_REASON, PG_URL_ENV, fresh_pg_schema

DIFF = CONFIG.model_copy(update={"changes_from": "diff"})
BOTH = CONFIG.model_copy(update={"changes_from": "both"})
FAST_RETRY = {"retry_backoff_seconds": 0.01, "retry_backoff_cap_seconds": 0.01}
JOINED = datetime(2026, 11, 20, tzinfo=timezone.utc)


@pytest.fixture
def fast(program_url, emulator) -> Iterator[Runtime]:
    rt = make_runtime(program_url, emulator.base_url, **FAST_RETRY)
    yield rt
    rt.close()


def start_backfill(runtime: Runtime, config=DIFF, wait: float = 10.0):
    """The backfill's run, waiting at most ``wait`` seconds for its jobs."""
    return run_backfill(
        runtime,
        config,
        "initial",
        thread_pool_sender(runtime, "initial", 4),
        direct_waiter(runtime, wait),
    )


def backfill(runtime: Runtime, config=DIFF) -> None:
    report = start_backfill(runtime, config)
    assert report.problems() == [] and report.counts["jobs_unfinished"] == 0
    # Members held back behind another audience's job go out as deltas; the first diff
    # sends none of the backfilled members again.
    drained = incremental(runtime, config)
    assert drained.counts["diff_enters"] == drained.counts["diff_exits"] == 0
    assert diff_keys(runtime) == 0
    assert runtime.store.deltas.counts()["pending"] == 0


def incremental(runtime: Runtime, config=DIFF, wait: float = 10.0):
    report = run_incremental(
        runtime,
        config,
        "inc",
        thread_pool_sender(runtime, "inc", 2),
        direct_waiter(runtime, wait, "inc"),
    )
    assert report.problems() == []
    return report


def sendable(runtime: Runtime, n: int, *, member_of: str | None = None, outside: str = ""):
    """Customers with a client user id and email, in (or outside) an audience."""
    stmt = select(customers.c.customer_id).where(
        customers.c.client_user_id.is_not(None), customers.c.email.is_not(None)
    )
    m = audience_members.c
    if member_of:
        stmt = stmt.where(
            customers.c.customer_id.in_(select(m.customer_id).where(m.audience_slug == member_of))
        )
    if outside:
        stmt = stmt.where(
            customers.c.customer_id.not_in(select(m.customer_id).where(m.audience_slug == outside))
        )
    with runtime.source.connect() as conn:
        return list(conn.scalars(stmt.order_by(customers.c.customer_id).limit(n)))


def join(runtime: Runtime, audience: str, *cids: int) -> None:
    rows = [{"audience_slug": audience, "customer_id": c, "joined_at": JOINED} for c in cids]
    if not rows:
        return
    with runtime.store.engine.begin() as conn:
        conn.execute(insert(audience_members), rows)


def leave(runtime: Runtime, audience: str, *cids: int) -> None:
    m = audience_members.c
    with runtime.store.engine.begin() as conn:
        conn.execute(
            delete(audience_members).where(m.audience_slug == audience, m.customer_id.in_(cids))
        )


def at_emulator(emulator, runtime: Runtime, cid: int, name: str):
    (row,) = load_customers(runtime.source, [cid])
    user = emulator.state.find_user(
        clientUserId=identifiers_for(CONFIG, row).to_wire()["clientUserId"]
    )
    return None if user is None else user["attributes"].get("custom", {}).get(name)


def deltas_of(runtime: Runtime, cid: int) -> list[tuple[str, str, str]]:
    d = audience_deltas.c
    stmt = select(d.audience, d.action, d.state).where(d.customer_id == cid).order_by(d.seq)
    with runtime.store.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(stmt)]


def diff_keys(runtime: Runtime) -> int:
    d = audience_deltas.c
    stmt = select(func.count()).where(d.delta_key.startswith(diff.DIFF_PREFIX))
    with runtime.store.engine.connect() as conn:
        return int(conn.scalar(stmt) or 0)


def generations(runtime: Runtime) -> dict[str, int]:
    t = audience_diffs.c
    with runtime.store.engine.connect() as conn:
        return dict(conn.execute(select(t.audience, t.generation)).all())


def all_members(runtime: Runtime, audience: str) -> set[int]:
    m = audience_members.c
    with runtime.source.connect() as conn:
        return set(conn.scalars(select(m.customer_id).where(m.audience_slug == audience)))


def test_leaving_and_joining_reach_attentive_in_one_run_and_backfilled_members_are_not_resent(
    any_runtime, emulator
):
    runtime = any_runtime
    backfill(runtime)
    gone, stays = sendable(runtime, 2, member_of="vip")
    (new,) = sendable(runtime, 1, outside="vip")
    assert at_emulator(emulator, runtime, gone, "vip") is True
    leave(runtime, "vip", gone)
    join(runtime, "vip", new)

    report = incremental(runtime)

    assert (report.counts["diff_enters"], report.counts["diff_exits"]) == (1, 1)
    assert report.counts["leased"] == 2 and report.counts["accepted"] == 2
    assert at_emulator(emulator, runtime, gone, "vip") is False
    assert at_emulator(emulator, runtime, new, "vip") is True
    assert at_emulator(emulator, runtime, stays, "vip") is True
    assert deltas_of(runtime, gone) == [("vip", "exit", "done")]
    assert deltas_of(runtime, new) == [("vip", "enter", "done")]
    ledger = runtime.store.accepted.for_customers([gone, new])
    assert ledger[gone]["vip"] is False and ledger[new]["vip"] is True
    for audience in CONFIG.audiences:
        assert runtime.store.sent_members.of(audience) >= all_members(runtime, audience)
    assert gone not in runtime.store.sent_members.of("vip")
    assert runtime.store.sent_members.diffed() == set(CONFIG.audiences)

    again = incremental(runtime)
    assert (again.counts["diff_enters"], again.counts["diff_exits"], again.counts["leased"]) == (
        0,
        0,
        0,
    )


def test_entering_and_leaving_between_two_runs_sends_nothing(any_runtime, emulator):
    runtime = any_runtime
    backfill(runtime)
    (passing,) = sendable(runtime, 1, outside="vip")
    join(runtime, "vip", passing)
    leave(runtime, "vip", passing)

    report = incremental(runtime)

    assert (report.counts["diff_enters"], report.counts["diff_exits"]) == (0, 0)
    assert report.counts["records_sent"] == 0
    assert at_emulator(emulator, runtime, passing, "vip") is None
    assert deltas_of(runtime, passing) == []
    assert passing not in runtime.store.sent_members.of("vip")


def test_both_repairs_what_the_queue_missed_and_sends_a_queued_change_once(any_runtime, emulator):
    runtime = any_runtime
    backfill(runtime, BOTH)
    announced, missed = sendable(runtime, 2, member_of="vip")
    # A producer reports one exit; another exit happens only in the table.
    leave(runtime, "vip", announced, missed)
    runtime.store.deltas.enqueue(
        [NewDelta("vip", announced, "exit", datetime.now(timezone.utc), "producer-1")]
    )

    report = incremental(runtime, BOTH)

    assert report.counts["diff_exits"] == 2
    assert report.counts["coalesced"] == 1, "the diff's exit and the producer's are one change"
    assert report.counts["records_sent"] == 2
    assert at_emulator(emulator, runtime, announced, "vip") is False
    assert at_emulator(emulator, runtime, missed, "vip") is False
    assert deltas_of(runtime, missed) == [("vip", "exit", "done")]
    assert [a for _, a, s in deltas_of(runtime, announced) if s == "done"] == ["exit", "exit"]


def test_under_diff_a_producers_delta_sends_what_the_table_says(any_runtime, emulator):
    runtime = any_runtime
    backfill(runtime)
    (member,) = sendable(runtime, 1, member_of="vip")
    (outsider,) = sendable(runtime, 1, outside="vip")
    now = datetime.now(timezone.utc)
    runtime.store.deltas.enqueue(
        [
            NewDelta("vip", member, "exit", now, "producer-2"),
            NewDelta("vip", outsider, "enter", now, "producer-3"),
        ]
    )

    report = incremental(runtime)

    assert (report.counts["diff_enters"], report.counts["diff_exits"]) == (0, 0)
    assert report.counts["records_sent"] == 2 and report.counts["accepted"] == 2
    assert at_emulator(emulator, runtime, member, "vip") is True
    assert at_emulator(emulator, runtime, outsider, "vip") is False
    assert deltas_of(runtime, member) == [("vip", "exit", "done")]
    assert member in runtime.store.sent_members.of("vip")
    assert outsider not in runtime.store.sent_members.of("vip")


def test_a_member_the_backfill_leaves_to_a_queued_delta_is_not_lost(any_runtime, emulator):
    """The backfill skips a member with a delta queued (the queue has the later word); under
    ``diff`` that delta sends what the table says, so the member still ends ``true``."""
    runtime = any_runtime
    (newcomer,) = sendable(runtime, 1, outside="vip")
    join(runtime, "vip", newcomer)
    runtime.store.deltas.enqueue(
        [NewDelta("vip", newcomer, "exit", datetime.now(timezone.utc), "stale-producer")]
    )

    backfill(runtime)

    assert at_emulator(emulator, runtime, newcomer, "vip") is True
    # (Their other audiences' flags, left out of the held-back record, went as rebuilt enters.)
    vip = [delta for delta in deltas_of(runtime, newcomer) if delta[0] == "vip"]
    assert vip == [("vip", "exit", "done")]
    assert all(state == "done" for _, _, state in deltas_of(runtime, newcomer))
    assert runtime.store.accepted.for_customers([newcomer])[newcomer]["vip"] is True
    assert newcomer in runtime.store.sent_members.of("vip")


def test_taking_over_from_the_queue_seeds_from_what_attentive_accepted(any_runtime, emulator):
    """A backfill under ``queue`` records no sent membership: the first diff reads the
    ledger (and the quarantine), so it sends only what the queue never sent."""
    runtime = any_runtime
    backfill(runtime, CONFIG)
    assert runtime.store.sent_members.of("vip") == set()
    parked_before = sum(runtime.store.quarantine.summary().values())
    (gone,) = sendable(runtime, 1, member_of="vip")
    leave(runtime, "vip", gone)

    report = incremental(runtime)

    assert (report.counts["diff_enters"], report.counts["diff_exits"]) == (0, 1)
    assert sum(runtime.store.quarantine.summary().values()) == parked_before
    assert at_emulator(emulator, runtime, gone, "vip") is False
    assert runtime.store.sent_members.of("vip") >= all_members(runtime, "vip")


def test_taking_over_while_backfill_jobs_are_unsettled_counts_their_members_as_sent(
    any_runtime, emulator
):
    """Members a backfill job carries, unsettled when the diff takes over (their job keeps
    them in one document), are in its baseline: the diff queues no ``enter`` for them."""
    runtime = any_runtime
    report = start_backfill(runtime, CONFIG, wait=0.0)
    assert report.counts["jobs_unfinished"] > 0
    carried = {cid for _, cid in _unsettled_members(runtime)}
    vip = all_members(runtime, "vip")
    assert carried & vip

    drained = incremental(runtime)

    assert drained.counts["diff_enters"] == 0
    assert runtime.store.sent_members.of("vip") >= carried & vip


def _unsettled_members(runtime: Runtime) -> list[tuple[str, int]]:
    with runtime.store.engine.connect() as conn:
        return list(unsettled_members_in(conn))


def test_a_failed_job_sends_the_diffs_change_again_without_a_second_delta(fast, emulator):
    backfill(fast)
    (gone,) = sendable(fast, 1, member_of="vip")
    leave(fast, "vip", gone)
    emulator.state.change_faults({"fail_job_rate": 1.0})
    first = incremental(fast, wait=3.0)
    assert first.counts["diff_exits"] == 1 and first.counts["retried"] == 1
    assert deltas_of(fast, gone) == [("vip", "exit", "pending")]
    emulator.state.change_faults({"fail_job_rate": 0.0})

    second = incremental(fast)

    assert second.counts["diff_exits"] == 0 and second.counts["accepted"] == 1
    assert deltas_of(fast, gone) == [("vip", "exit", "done")]
    assert at_emulator(emulator, fast, gone, "vip") is False


def test_an_unsendable_member_is_parked_once_not_every_run(any_runtime, emulator):
    runtime = any_runtime
    backfill(runtime)
    with runtime.source.connect() as conn:
        bad = conn.scalar(select(customers.c.customer_id).where(customers.c.phone == "5551234"))
    assert bad is not None, "the seed includes the never-valid phone 5551234"
    leave(runtime, "vip", bad)
    incremental(runtime)
    (good,) = sendable(runtime, 1, outside="vip")
    join(runtime, "vip", bad, good)
    parked = runtime.store.quarantine.summary()

    first = incremental(runtime)
    second = incremental(runtime)

    assert first.counts["diff_enters"] == 2 and first.counts["quarantined"] == 1
    assert second.counts["diff_enters"] == 0 and second.counts["leased"] == 0
    assert sum(runtime.store.quarantine.summary().values()) == sum(parked.values()) + 1
    assert deltas_of(runtime, bad)[-1] == ("vip", "enter", "quarantined")
    assert at_emulator(emulator, runtime, good, "vip") is True


def test_a_diff_that_fails_queues_nothing_and_the_next_run_sends_it(
    any_runtime, emulator, monkeypatch
):
    runtime = any_runtime
    backfill(runtime)
    (gone,) = sendable(runtime, 1, member_of="vip")
    leave(runtime, "vip", gone)
    before = generations(runtime)

    def broken(*args, **kwargs):
        raise RuntimeError("the store went away mid-diff")

    monkeypatch.setattr(diff, "update", broken)
    with pytest.raises(RuntimeError, match="mid-diff"):
        incremental(runtime)
    assert deltas_of(runtime, gone) == []
    assert gone in runtime.store.sent_members.of("vip"), "the baseline did not move"
    assert generations(runtime) == before
    monkeypatch.undo()

    report = incremental(runtime)

    assert report.counts["diff_exits"] == 1
    assert at_emulator(emulator, runtime, gone, "vip") is False
    assert deltas_of(runtime, gone) == [("vip", "exit", "done")]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def other_source(request, db_url) -> Iterator[str]:
    """The seeded program in a database of its own: a SQLite file, or a PostgreSQL schema
    other than the store's."""
    if request.param == "sqlite":
        yield db_url
        return
    base = os.environ.get(PG_URL_ENV)
    if not base:
        pytest.skip(PG_SKIP_REASON)
    with fresh_pg_schema(base) as url:
        init_db(url)
        engine = make_engine(url)
        seed_program(engine, CUSTOMERS, seed=11, now=NOW)
        engine.dispose()
        yield url


def test_a_source_in_another_database_is_diffed_the_same_way(store_url, other_source, emulator):
    """The store and the loyalty source in two databases, each SQLite or PostgreSQL."""
    runtime = make_runtime(store_url, emulator.base_url, source_url=other_source)
    try:
        assert not diff.shares_database(runtime)
        backfill(runtime)
        (gone,) = sendable(runtime, 1, member_of="vip")
        (new,) = sendable(runtime, 1, outside="vip")
        source_write = runtime.source
        m = audience_members.c
        with source_write.begin() as conn:
            conn.execute(
                delete(audience_members).where(m.audience_slug == "vip", m.customer_id == gone)
            )
            conn.execute(
                insert(audience_members),
                [{"audience_slug": "vip", "customer_id": new, "joined_at": JOINED}],
            )

        report = incremental(runtime)

        assert (report.counts["diff_enters"], report.counts["diff_exits"]) == (1, 1)
        assert at_emulator(emulator, runtime, gone, "vip") is False
        assert at_emulator(emulator, runtime, new, "vip") is True
        assert members_among(runtime.source, "vip", [new]) == {new}
        sent = runtime.store.sent_members.of("vip")
        assert sent >= all_members(runtime, "vip") and new in sent and gone not in sent
    finally:
        runtime.close()


def test_two_runs_diffing_at_once_queue_each_change_once(any_runtime):
    runtime = any_runtime
    first = diff.queue_membership_changes(runtime, DIFF)
    assert first.enters == diff_keys(runtime) > 0, "no backfill ran: members are entered"
    gone = sendable(runtime, 3, member_of="vip")
    new = sendable(runtime, 2, outside="vip")
    leave(runtime, "vip", *gone)
    join(runtime, "vip", *new)
    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(lambda _: diff.queue_membership_changes(runtime, DIFF), range(2)))

    assert sorted((o.enters, o.exits) for o in outcomes) == [(0, 0), (2, 3)]
    assert diff_keys(runtime) == first.enters + 5
    assert runtime.store.sent_members.of("vip") == all_members(runtime, "vip")


def test_changes_from_accepts_only_the_three_sources():
    with pytest.raises(ValidationError, match="changes_from"):
        CONFIG.model_validate({**CONFIG.model_dump(), "changes_from": "table"})
    assert CONFIG.changes_from == "queue"


def test_random_rounds_of_changes_leave_the_queue_saying_what_the_table_says(any_runtime):
    """Many rounds of joins, leaves and passing visits: after each diff the queued deltas,
    replayed in order, say exactly who is a member, and a passing visit queues nothing."""
    runtime, rng = any_runtime, random.Random(7)
    with runtime.source.connect() as conn:
        everyone = list(conn.scalars(select(customers.c.customer_id)))
    diff.queue_membership_changes(runtime, DIFF)
    for _ in range(25):
        members = all_members(runtime, "vip")
        leaving = rng.sample(sorted(members), rng.randint(0, 6))
        joining = rng.sample(sorted(set(everyone) - members), rng.randint(0, 6))
        passing = [c for c in joining if rng.random() < 0.3]
        leave(runtime, "vip", *leaving)
        join(runtime, "vip", *joining)
        leave(runtime, "vip", *passing)
        before = diff_keys(runtime)

        outcome = diff.queue_membership_changes(runtime, DIFF)

        stayed = [c for c in joining if c not in passing]
        assert (outcome.enters, outcome.exits) == (len(stayed), len(leaving))
        assert diff_keys(runtime) == before + len(stayed) + len(leaving)
        assert runtime.store.sent_members.of("vip") == all_members(runtime, "vip")
        said = replayed(runtime, "vip")
        assert {c for c, member in said.items() if member} == all_members(runtime, "vip")
        for cid in passing:
            assert said.get(cid) in (None, False), "a passing visit never says true"


def replayed(runtime: Runtime, audience: str) -> dict[int, bool]:
    """What the diff's queued deltas say per customer, the latest winning."""
    d = audience_deltas.c
    stmt = (
        select(d.customer_id, d.action)
        .where(d.audience == audience, d.delta_key.startswith(diff.DIFF_PREFIX))
        .order_by(d.seq)
    )
    with runtime.store.engine.connect() as conn:
        return {cid: action == "enter" for cid, action in conn.execute(stmt)}
