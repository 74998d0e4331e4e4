"""The simulated network: who is linked to whom, per-link latency, loss and partitions."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from echorand.sim.clock import Clock

FULL_MESH_UP_TO = 16
"""Up to this many nodes every node is linked to every other; above, a sparse graph."""

DEGREE = 8
"""Links per node in the sparse graph (a ring plus random chords)."""


@dataclass(frozen=True, slots=True)
class Partition:
    """From `start_ms` to `end_ms`, nodes below `split` and the others cannot talk."""

    start_ms: int
    end_ms: int
    split: int

    def cuts(self, a: int, b: int, now_ms: int) -> bool:
        return self.start_ms <= now_ms < self.end_ms and (a < self.split) != (b < self.split)


class Network:
    """Delivers payloads between nodes after a link's latency, unless lost or cut."""

    def __init__(
        self,
        clock: Clock,
        n: int,
        rng: random.Random,
        latency_ms: int,
        loss: float,
        partitions: tuple[Partition, ...] = (),
    ) -> None:
        self.clock = clock
        self.rng = rng
        self.loss = loss
        self.partitions = partitions
        self.neighbours = _topology(n, rng)
        self.latency = {
            (a, b): max(1, round(latency_ms * rng.uniform(0.5, 1.5)))
            for a in range(n)
            for b in self.neighbours[a]
        }
        self.jitter = max(1, latency_ms // 5)
        self.online = [True] * n
        self.transmissions = 0
        self.lost = 0

    def connected(self, a: int, b: int) -> bool:
        """Whether a message from a to b can arrive now (both up, no partition between)."""
        now = self.clock.now_ms
        return (
            self.online[a]
            and self.online[b]
            and not any(p.cuts(a, b, now) for p in self.partitions)
        )

    def send(self, src: int, dst: int, deliver: Callable[[], None], delay_ms: int = 0) -> None:
        """Send to a linked node: `deliver` runs at the destination after the link latency."""
        self.transmissions += 1
        if not self.connected(src, dst) or (self.loss and self.rng.random() < self.loss):
            self.lost += 1
            return
        latency = self.latency.get((src, dst))
        if latency is None:  # not linked: a direct request (sync), through the mesh
            latency = 2 * max(self.latency.values(), default=1)
        at = self.clock.now_ms + delay_ms + latency + self.rng.randrange(self.jitter)
        self.clock.at(at, lambda: self._arrive(src, dst, deliver))

    def _arrive(self, src: int, dst: int, deliver: Callable[[], None]) -> None:
        if self.online[dst] and not any(
            p.cuts(src, dst, self.clock.now_ms) for p in self.partitions
        ):
            deliver()
        else:
            self.lost += 1


def _topology(n: int, rng: random.Random) -> list[list[int]]:
    if n <= FULL_MESH_UP_TO:
        return [[b for b in range(n) if b != a] for a in range(n)]
    links: set[tuple[int, int]] = set()
    for a in range(n):
        links.add((a, (a + 1) % n))
    while len(links) < n * DEGREE // 2:
        a, b = rng.sample(range(n), 2)
        if (b, a) not in links:
            links.add((a, b))
    neighbours: list[set[int]] = [set() for _ in range(n)]
    for a, b in links:
        neighbours[a].add(b)
        neighbours[b].add(a)
    return [sorted(s) for s in neighbours]
