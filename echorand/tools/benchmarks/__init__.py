"""Benchmarks behind `echorand bench ...`: ours against a baseline measured in the same run.

Each benchmark module exposes `run(**options) -> Report`. A report is a list of
rows; each row times one operation of ours and, where there is one, the
baseline doing the same work, and gives the ratio (baseline time / our time:
above 1 means we are faster).
"""

from __future__ import annotations

import gc
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True, slots=True)
class Row:
    """One measured operation: seconds per call, and per item where `items` > 1."""

    name: str
    seconds: float
    items: int = 1
    baseline: str | None = None
    baseline_seconds: float | None = None
    target: str | None = None
    target_met: bool | None = None
    extra: dict[str, float | int | str] = field(default_factory=dict)

    @property
    def per_item_ns(self) -> float:
        return self.seconds / self.items * 1e9

    @property
    def ratio(self) -> float | None:
        """baseline time / our time (how many times faster we are)."""
        if self.baseline_seconds is None or self.seconds <= 0:
            return None
        return self.baseline_seconds / self.seconds

    def to_json(self) -> dict[str, object]:
        out = asdict(self)
        out["per_item_ns"] = self.per_item_ns
        out["ratio"] = self.ratio
        return out


@dataclass(slots=True)
class Report:
    """The rows of one benchmark, with the machine they were measured on."""

    title: str
    rows: list[Row] = field(default_factory=list)
    machine: dict[str, object] = field(default_factory=lambda: machine_info())

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        return row

    def to_json(self) -> dict[str, object]:
        return {
            "title": self.title,
            "machine": self.machine,
            "rows": [r.to_json() for r in self.rows],
        }


def machine_info() -> dict[str, object]:
    """What the numbers were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count() or 1,
        "python": platform.python_version(),
        "system": platform.system(),
    }


def best_time(fn: Callable[[], object], *, repeat: int = 5, min_seconds: float = 0.05) -> float:
    """The best (lowest) wall time of one call of `fn`, in seconds.

    Calls `fn` in loops long enough to reach `min_seconds`, `repeat` times, and
    keeps the fastest loop's average: the least disturbed by a shared machine.
    """
    fn()  # warm up caches and lazy initialisation
    number = 1
    while True:
        elapsed = _timed_loop(fn, number)
        if elapsed >= min_seconds or number >= 1 << 20:
            break
        number *= 2 if elapsed <= 0 else max(2, min(10, int(min_seconds / elapsed) + 1))
    best = elapsed / number
    for _ in range(repeat - 1):
        best = min(best, _timed_loop(fn, number) / number)
    return best


def _timed_loop(fn: Callable[[], object], number: int) -> float:
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        for _ in range(number):
            fn()
        return time.perf_counter() - start
    finally:
        if was_enabled:
            gc.enable()
