"""Coalescing a lease of attribute writes: the latest write that covers an earlier one wins."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from attentive_sync.engine.delivery.writes import latest_writes
from attentive_sync.store.records import QueuedWrite

_AT = datetime(2026, 1, 1, tzinfo=UTC)


def _write(seq: int, customer_id: int, names: frozenset[str]) -> QueuedWrite:
    return QueuedWrite(
        seq=seq,
        customer_id=customer_id,
        occurred_at=_AT,
        enqueued_at=_AT,
        state="leased",
        attempts=0,
        lease_owner="run",
        lease_expires_at=None,
        next_attempt_at=_AT,
        job_id=None,
        last_error=None,
        write_key=f"k{seq}",
        kind="profile",
        attributes={name: seq for name in sorted(names)},
    )


def _by_definition(rows: list[QueuedWrite]) -> tuple[list[int], list[int]]:
    """A write is overtaken when a later kept write of its customer sets every attribute
    it sets (latest first, so a kept write is never itself overtaken)."""
    keep: list[QueuedWrite] = []
    overtaken: list[QueuedWrite] = []
    for row in sorted(rows, key=lambda r: r.seq, reverse=True):
        later = [k for k in keep if k.customer_id == row.customer_id]
        if any(set(row.attributes) <= set(k.attributes) for k in later):
            overtaken.append(row)
        else:
            keep.append(row)
    return sorted(r.seq for r in keep), [r.seq for r in overtaken]


_rows = st.lists(
    st.tuples(
        st.integers(1, 4),
        st.frozensets(st.sampled_from(["points", "tier", "expiring", "next_reward"]), max_size=4),
    ),
    max_size=40,
).map(lambda specs: [_write(seq, c, names) for seq, (c, names) in enumerate(specs, start=1)])


@given(rows=_rows)
def test_a_lease_coalesces_as_the_definition_says(rows: list[QueuedWrite]) -> None:
    keep, overtaken = latest_writes(rows)
    assert ([r.seq for r in keep], [r.seq for r in overtaken]) == _by_definition(rows)
    assert sorted(r.seq for r in keep + overtaken) == [r.seq for r in rows]


def test_a_later_partial_write_does_not_overtake_a_wider_earlier_one() -> None:
    wide = _write(1, 7, frozenset({"points", "tier"}))
    narrow = _write(2, 7, frozenset({"points"}))
    covering = _write(5, 8, frozenset({"points", "tier"}))
    covered = _write(4, 8, frozenset({"tier"}))
    keep, overtaken = latest_writes([wide, narrow, covered, covering])
    assert [r.seq for r in keep] == [1, 2, 5]
    assert [(r.customer_id, r.seq) for r in overtaken] == [(8, 4)]
