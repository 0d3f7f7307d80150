"""Settling a run's earlier jobs on a thread while it sends later ones."""

from __future__ import annotations

import threading

import pytest

from attentive_sync.engine.delivery.collaborators import SettleBehind
from attentive_sync.engine.delivery.settle import SettleResult, WaitResult


class FakeWait:
    """Settles every job it is given but those named ``slow`` (left unfinished); a wait
    can be held until released, and can fail."""

    def __init__(self, slow: tuple[str, ...] = (), fail_on: str = "") -> None:
        self.calls: list[tuple[list[str], str]] = []
        self.slow, self.fail_on = set(slow), fail_on
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, job_ids: list[str]) -> WaitResult:
        self.calls.append((list(job_ids), threading.current_thread().name))
        self.gate.wait(5)
        if self.fail_on in job_ids:
            raise RuntimeError(f"poll of {self.fail_on} failed")
        done = [SettleResult(j, "COMPLETED", accepted=1) for j in job_ids if j not in self.slow]
        return WaitResult(done, [j for j in job_ids if j in self.slow])


def ids(prefix: str, n: int) -> list[str]:
    return [f"{prefix}{i}" for i in range(n)]


def test_jobs_are_settled_behind_the_sends_and_the_rest_at_the_end() -> None:
    wait = FakeWait()
    behind = SettleBehind(wait, at_least=3)
    behind.add(ids("a", 2))
    assert wait.calls == [], "fewer than at_least jobs: no wait yet"
    behind.add(ids("b", 2))
    while not wait.calls:
        threading.Event().wait(0.01)
    behind.add(ids("c", 1))
    result = behind.finish()

    (first, first_thread), (last, last_thread) = wait.calls
    assert first == ["a0", "a1", "b0", "b1"] and first_thread.startswith("settle-behind")
    assert last == ["c0"] and last_thread == threading.current_thread().name
    assert [s.job_id for s in result.settled] == ["a0", "a1", "b0", "b1", "c0"]
    assert result.unfinished == []


def test_jobs_sent_while_a_wait_runs_go_into_the_next_wait() -> None:
    wait = FakeWait()
    wait.gate.clear()
    behind = SettleBehind(wait, at_least=2)
    behind.add(ids("a", 2))  # starts a wait, held
    behind.add(ids("b", 2))  # one is running: pending
    behind.add(ids("c", 1))
    wait.gate.set()
    result = behind.finish()

    assert [call for call, _ in wait.calls] == [["a0", "a1"], ["b0", "b1", "c0"]]
    assert sorted(s.job_id for s in result.settled) == ["a0", "a1", "b0", "b1", "c0"]


def test_a_job_left_unfinished_is_reported_not_waited_on_again() -> None:
    wait = FakeWait(slow=("a1",))
    behind = SettleBehind(wait, at_least=2)
    behind.add(ids("a", 2))
    behind.add(ids("b", 2))
    result = behind.finish()

    waited = [job for call, _ in wait.calls for job in call]
    assert waited.count("a1") == 1
    assert result.unfinished == ["a1"]
    assert sorted(s.job_id for s in result.settled) == ["a0", "b0", "b1"]


def test_a_failed_wait_stops_the_run_at_its_next_send() -> None:
    wait = FakeWait(fail_on="a0")
    behind = SettleBehind(wait, at_least=1)
    behind.add(["a0"])
    while not wait.calls:
        threading.Event().wait(0.01)
    with pytest.raises(RuntimeError, match="poll of a0 failed"):
        for _ in range(1000):
            behind.add([])
            threading.Event().wait(0.01)
    behind.abandon()


def test_abandon_lets_a_running_wait_end() -> None:
    wait = FakeWait()
    wait.gate.clear()
    behind = SettleBehind(wait, at_least=1)
    behind.add(["a0"])
    threading.Timer(0.2, wait.gate.set).start()
    behind.abandon()
    assert wait.gate.is_set(), "abandon returned only after the running wait ended"
