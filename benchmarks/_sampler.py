"""A stack sampler for threaded runs, and CPU time per thread.

cProfile only sees the thread that started it, and the engine's sends run on worker
threads; sampling every thread's stack shows where all of them spend their time.
"""

from __future__ import annotations

import re
import sys
import threading
import time
from collections import Counter
from types import FrameType
from typing import Any

import psutil

_IDLE_FILES = ("threading.py", "queue.py", "selectors.py", "concurrent/futures/thread.py")


def _label(frame: FrameType) -> str:
    path = frame.f_code.co_filename
    for marker in ("site-packages/", "/src/", "/lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{path}:{frame.f_code.co_name}"


class StackSampler:
    """Samples every thread's Python stack about 100 times a second.

    cProfile only sees the thread that started it, and the bulk sends run on worker
    threads. A sample whose innermost frame is a pool or lock wait counts as idle and is
    left out of the rankings, so they show where busy threads spend their time.
    """

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        self.own: Counter[str] = Counter()
        self.total: Counter[str] = Counter()
        self.busy = self.idle = 0
        self.thread_cpu: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stack-sampler", daemon=True)

    def __enter__(self) -> StackSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.thread_cpu = thread_cpu_seconds()

    def _run(self) -> None:
        me = threading.get_ident()
        while not self._stop.wait(self.interval):
            for ident, frame in sys._current_frames().items():
                if ident != me:
                    self._sample(frame)

    def _sample(self, frame: FrameType) -> None:
        if frame.f_code.co_filename.endswith(_IDLE_FILES):
            self.idle += 1
            return
        self.busy += 1
        self.own[_label(frame)] += 1
        seen: set[str] = set()
        current: FrameType | None = frame
        while current is not None:
            seen.add(_label(current))
            current = current.f_back
        self.total.update(seen)

    def top(self, n: int = 20) -> dict[str, Any]:
        share = 100 / max(1, self.busy)
        return {
            "busy_samples": self.busy,
            "idle_samples": self.idle,
            "own": [(name, round(c * share, 1)) for name, c in self.own.most_common(n)],
            "total": [(name, round(c * share, 1)) for name, c in self.total.most_common(n)],
            "thread_cpu": self.thread_cpu,
        }


def thread_cpu_seconds() -> dict[str, float]:
    """CPU seconds of this process's live threads, grouped by name less its pool number.

    Threads that already ended are counted under "(ended threads)": the process total less
    what the live threads used.
    """
    names = {t.native_id: t.name for t in threading.enumerate()}
    groups: Counter[str] = Counter()
    for thread in psutil.Process().threads():
        name = re.sub(r"[-_]\d+(_\d+)?$", "", names.get(thread.id, "(not a Python thread)"))
        groups[name] += thread.user_time + thread.system_time
    groups["(ended threads)"] = max(0.0, time.process_time() - sum(groups.values()))
    return {name: round(cpu, 1) for name, cpu in groups.most_common()}
