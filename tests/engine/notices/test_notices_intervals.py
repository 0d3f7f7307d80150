from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attentive_sync.engine.notices import Interval, interval_containing, last_completed_interval
from attentive_sync.engine.notices.intervals import nth_interval

from .loyalty_db import utc

JAN_31 = utc(2024, 1, 31, 10, 30)

# Reproducible examples, and no per-example deadline: the CPU is shared, the rule is not.
PROPERTY = settings(deadline=None, derandomize=True)


@pytest.mark.parametrize(
    ("index", "start", "end"),
    [
        (0, utc(2024, 1, 31, 10, 30), utc(2024, 2, 29, 10, 30)),  # leap February clips
        (1, utc(2024, 2, 29, 10, 30), utc(2024, 3, 31, 10, 30)),  # back to the 31st
        (2, utc(2024, 3, 31, 10, 30), utc(2024, 4, 30, 10, 30)),
        (12, utc(2025, 1, 31, 10, 30), utc(2025, 2, 28, 10, 30)),  # common February
        (13, utc(2025, 2, 28, 10, 30), utc(2025, 3, 31, 10, 30)),
    ],
)
def test_month_end_anchor_keeps_its_day_where_the_month_has_it(index, start, end):
    assert nth_interval(JAN_31, index) == Interval(start, end)


def test_no_interval_has_completed_before_one_month_has_passed():
    assert last_completed_interval(JAN_31, utc(2024, 2, 29, 10, 29, 59)) is None
    assert last_completed_interval(JAN_31, JAN_31) is None


def test_first_interval_completes_exactly_one_month_after_enabling():
    first = last_completed_interval(JAN_31, utc(2024, 2, 29, 10, 30))
    assert first == Interval(JAN_31, utc(2024, 2, 29, 10, 30))
    assert first.period_key == "2024-01-31"


def test_a_moment_on_a_boundary_belongs_to_the_interval_it_starts():
    assert interval_containing(JAN_31, utc(2024, 3, 31, 10, 30)).start == utc(2024, 3, 31, 10, 30)
    just_before = utc(2024, 3, 31, 10, 30) - timedelta(microseconds=1)
    assert interval_containing(JAN_31, just_before).start == utc(2024, 2, 29, 10, 30)


def test_before_enabling_there_is_no_interval():
    assert interval_containing(JAN_31, utc(2024, 1, 31, 10, 29)) is None


def test_other_offsets_are_read_as_the_same_instant():
    new_york = timezone(timedelta(hours=-5))
    assert interval_containing(JAN_31, datetime(2024, 2, 29, 5, 30, tzinfo=new_york)).start == (
        utc(2024, 2, 29, 10, 30)
    )


def test_naive_datetimes_are_refused_with_a_clear_message():
    with pytest.raises(ValueError, match="enabled_at must be timezone-aware"):
        last_completed_interval(datetime(2024, 1, 31), utc(2024, 5, 1))
    with pytest.raises(ValueError, match="moment must be timezone-aware"):
        interval_containing(JAN_31, datetime(2024, 5, 1))


moments = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(timezone.utc)
)


@PROPERTY
@given(enabled_at=moments, offset=st.timedeltas(timedelta(0), timedelta(days=3000)))
def test_every_moment_after_enabling_lies_in_its_interval(enabled_at, offset):
    moment = enabled_at + offset
    interval = interval_containing(enabled_at, moment)
    assert interval.start <= moment < interval.end
    assert 28 <= (interval.end - interval.start).days <= 31


@PROPERTY
@given(enabled_at=moments, offset=st.timedeltas(timedelta(0), timedelta(days=3000)))
def test_last_completed_interval_is_the_one_just_before_the_current(enabled_at, offset):
    as_of = enabled_at + offset
    current = interval_containing(enabled_at, as_of)
    completed = last_completed_interval(enabled_at, as_of)
    if current.start == enabled_at:
        assert completed is None
    else:
        assert completed.end == current.start <= as_of


@PROPERTY
@given(enabled_at=moments, index=st.integers(0, 200))
def test_intervals_are_contiguous(enabled_at, index):
    assert nth_interval(enabled_at, index).end == nth_interval(enabled_at, index + 1).start
