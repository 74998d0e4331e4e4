"""Simulated time: a queue of callbacks ordered by (time, insertion order)."""

from __future__ import annotations

import heapq
from collections.abc import Callable


class Clock:
    """The simulation's only clock; `run_until` executes callbacks in time order."""

    def __init__(self) -> None:
        self.now_ms = 0
        self._queue: list[tuple[int, int, Callable[[], None]]] = []
        self._seq = 0

    def at(self, time_ms: int, callback: Callable[[], None]) -> None:
        """Run `callback` at `time_ms` (never in the past)."""
        self._seq += 1
        heapq.heappush(self._queue, (max(time_ms, self.now_ms), self._seq, callback))

    def run_until(self, end_ms: int, stop: Callable[[], bool]) -> None:
        """Run callbacks until `end_ms`, the queue is empty, or `stop()` is true."""
        while self._queue and not stop():
            time_ms, _, callback = self._queue[0]
            if time_ms > end_ms:
                break
            heapq.heappop(self._queue)
            self.now_ms = time_ms
            callback()
