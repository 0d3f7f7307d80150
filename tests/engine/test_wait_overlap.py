"""Waiting on bulk jobs: the jobs one poll finds finished are settled while the next slice
is polled, every settlement is returned, and a settlement that fails ends the wait."""

from __future__ import annotations

import threading

import pytest

from attentive_sync.attentive import BulkJob
from attentive_sync.engine.delivery.settle import POLL_SLICE, SettleResult, wait_and_settle

JOBS = [f"job-{n}" for n in range(POLL_SLICE + 3)]  # two slices


def completed(ids: list[str]) -> list[BulkJob]:
    return [BulkJob(job_id, "COMPLETED", 1, None) for job_id in ids]


def test_the_first_slice_settles_while_the_second_is_polled() -> None:
    second_polled = threading.Event()
    overlapped: list[bool] = []

    def poll(ids: list[str]) -> list[BulkJob]:
        if ids[0] == JOBS[POLL_SLICE]:
            second_polled.set()
        return completed(ids)

    def settle(jobs: list[BulkJob]) -> list[SettleResult]:
        if jobs[0].job_id == JOBS[0]:
            # Sequential settling would wait here in vain: the second poll comes after.
            overlapped.append(second_polled.wait(timeout=10))
        return [SettleResult(job.job_id, job.status, accepted=1) for job in jobs]

    result = wait_and_settle(JOBS, poll, settle, deadline_seconds=30, poll_interval=0.01)

    assert overlapped == [True]
    assert [s.job_id for s in result.settled] == JOBS
    assert result.unfinished == []


def test_a_settlement_that_fails_ends_the_wait_with_its_error() -> None:
    def settle(jobs: list[BulkJob]) -> list[SettleResult]:
        raise RuntimeError("the store went away")

    with pytest.raises(RuntimeError, match="went away"):
        wait_and_settle(JOBS, completed, settle, deadline_seconds=30, poll_interval=0.01)


def test_jobs_still_running_at_the_deadline_are_left_unfinished() -> None:
    clock = iter(range(100)).__next__

    def poll(ids: list[str]) -> list[BulkJob]:
        return [BulkJob(job_id, "IN_PROGRESS", None, None) for job_id in ids]

    result = wait_and_settle(
        JOBS, poll, lambda jobs: [], deadline_seconds=3, clock=clock, sleep=lambda s: None
    )

    assert result.settled == [] and result.unfinished == JOBS
