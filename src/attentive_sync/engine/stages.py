"""CPU spent per stage of the hot paths, counted cheaply enough to stay on.

Each stage is entered once per page or per batch (never per member), and what it adds is
the CPU time of the thread that ran it (``time.thread_time``), so a thread waiting on the
rate limiter, a socket or a database lock adds nothing. The benchmarks print the totals
per member; ``snapshot`` is all they read.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_cpu: dict[str, float] = {}
_calls: dict[str, int] = {}


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Count the calling thread's CPU time inside the body under ``name``."""
    started = time.thread_time()
    try:
        yield
    finally:
        spent = time.thread_time() - started
        with _lock:
            _cpu[name] = _cpu.get(name, 0.0) + spent
            _calls[name] = _calls.get(name, 0) + 1


def snapshot() -> dict[str, tuple[float, int]]:
    """Stage name -> (CPU seconds, times entered), since the process started or ``reset``."""
    with _lock:
        return {name: (_cpu[name], _calls[name]) for name in _cpu}


def reset() -> None:
    with _lock:
        _cpu.clear()
        _calls.clear()
