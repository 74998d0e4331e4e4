"""The nemesis: a fault schedule drawn from a seed, and the hand that carries it out.

The schedule is a sequence of faults, one at a time: a quiet start, then a fault, a quiet
gap, the next fault, and so on until the run's duration; the kinds come in a shuffled
cycle of those chosen, so every kind occurs early. The seed alone decides the schedule
(which faults, on which nodes, when, for how long), so a run's seed reproduces it.

| kind        | what happens                                                   | lasts      |
|-------------|----------------------------------------------------------------|------------|
| `partition` | random halves; a minority cut from a majority; a bridge node    | 5-20 s     |
|             | that sees two halves which do not see each other; one node     |            |
|             | isolated by taking its link down                                |            |
| `kill`      | SIGKILL 1..(n-1)/2 nodes, restart them from their own LMDB      | 2-10 s     |
| `pause`     | SIGSTOP 1..(n-1)/2 nodes, then SIGCONT                          | 2-30 s     |
| `slow`      | tbf on 1..(n-1)/2 nodes' links, 128 kbit/s to 2 Mbit/s          | 10-25 s    |
| `disk`      | fill one node's tmpfs to the last byte, then free it            | 5-20 s     |
"""

from __future__ import annotations

import random
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from echorand.tools.chaos.cluster import ChaosNet
from echorand.tools.chaos.history import HEAL, START, FaultEvent, History
from echorand.tools.chaos.hosts import empty, fill

KINDS = ("partition", "kill", "pause", "slow", "disk")
SHAPES = ("halves", "majority", "bridge", "isolated")
DURATIONS: dict[str, tuple[float, float]] = {
    "partition": (5.0, 20.0),
    "kill": (2.0, 10.0),
    "pause": (2.0, 30.0),
    "slow": (10.0, 25.0),
    "disk": (5.0, 20.0),
}
"""Seconds a fault of each kind lasts (uniform in the range)."""
WARMUP = 5.0
QUIET = (5.0, 10.0)
"""Seconds without a fault after each heal (uniform in the range)."""
RATES_KBIT = (128, 512, 2048)


@dataclass(frozen=True, slots=True)
class Fault:
    kind: str
    start: float
    duration: float
    nodes: tuple[int, ...] = ()
    """The nodes it acts on (for a partition: the isolated node, or the bridge)."""
    shape: str = ""
    sides: tuple[tuple[int, ...], ...] = ()
    """A partition's sides: no node of one side reaches a node of another."""
    kbit: int = 0

    @property
    def end(self) -> float:
        return self.start + self.duration

    def cuts(self) -> list[tuple[int, int]]:
        """The node pairs a partition cuts (none for `isolated`: its link goes down)."""
        if self.shape == "isolated":
            return []
        return [
            (a, b)
            for i, side in enumerate(self.sides)
            for other in self.sides[i + 1 :]
            for a in side
            for b in other
        ]

    def describe(self) -> str:
        if self.kind == "partition":
            text = " | ".join("".join(map(str, side)) for side in self.sides)
            if self.shape == "bridge":
                text += f", bridge {self.nodes[0]}"
            return f"{self.shape} {text}"
        nodes = ",".join(map(str, self.nodes))
        if self.kind == "slow":
            return f"nodes {nodes} at {self.kbit} kbit/s"
        return f"node{'s' if len(self.nodes) > 1 else ''} {nodes}"


def _some(rng: random.Random, nodes: int) -> tuple[int, ...]:
    """1..(n-1)/2 distinct nodes (at least one), in order."""
    count = rng.randint(1, max(1, (nodes - 1) // 2))
    return tuple(sorted(rng.sample(range(nodes), count)))


def _partition(rng: random.Random, shape: str, nodes: int, start: float, d: float) -> Fault:
    order = list(range(nodes))
    rng.shuffle(order)
    if shape == "isolated":
        one = order[0]
        rest = tuple(sorted(order[1:]))
        return Fault("partition", start, d, (one,), shape, ((one,), rest))
    if shape == "bridge":
        bridge, rest = order[0], order[1:]
        half = max(1, len(rest) // 2)
        sides = (tuple(sorted(rest[:half])), tuple(sorted(rest[half:])))
        return Fault("partition", start, d, (bridge,), shape, sides)
    small = nodes // 2 if shape == "halves" else rng.randint(1, max(1, (nodes - 1) // 2))
    sides = (tuple(sorted(order[:small])), tuple(sorted(order[small:])))
    return Fault("partition", start, d, (), shape, sides)


def schedule(seed: int, kinds: Sequence[str], duration: float, nodes: int) -> list[Fault]:
    """The faults of a run of `duration` seconds on `nodes` nodes: a function of the seed."""
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        raise ValueError(f"unknown nemesis {unknown[0]!r}: choose from {', '.join(KINDS)}")
    if "partition" in kinds and nodes < 2:
        raise ValueError("a partition needs at least 2 nodes")
    rng = random.Random(seed)
    shapes = [s for s in SHAPES if nodes >= 3 or s != "bridge"]
    faults: list[Fault] = []
    cycle: list[str] = []
    shape_cycle: list[str] = []
    t = WARMUP
    while kinds:
        if not cycle:
            cycle = list(kinds)
            rng.shuffle(cycle)
        kind = cycle.pop()
        low, high = DURATIONS[kind]
        d = min(rng.uniform(low, high), duration - t)
        if d < low:
            break
        if kind == "partition":
            if not shape_cycle:
                shape_cycle = list(shapes)
                rng.shuffle(shape_cycle)
            faults.append(_partition(rng, shape_cycle.pop(), nodes, t, d))
        elif kind == "slow":
            faults.append(Fault(kind, t, d, _some(rng, nodes), kbit=rng.choice(RATES_KBIT)))
        elif kind == "disk":
            faults.append(Fault(kind, t, d, (rng.randrange(nodes),)))
        else:
            faults.append(Fault(kind, t, d, _some(rng, nodes)))
        t += d + rng.uniform(*QUIET)
    return faults


class Nemesis:
    """Starts and heals faults on the hosts and the node processes, and records each."""

    def __init__(self, net: ChaosNet, history: History, clock: Callable[[], float]) -> None:
        self.net = net
        self.hosts = net.hosts
        self.history = history
        self.clock = clock

    def _record(self, fault: Fault, action: str) -> None:
        event = FaultEvent(
            self.clock(), fault.kind, action, fault.nodes, fault.describe(), fault.sides
        )
        self.history.faults.append(event)

    def start(self, fault: Fault) -> None:
        self._record(fault, START)
        net, hosts = self.net, self.hosts
        match fault.kind:
            case "partition" if fault.shape == "isolated":
                hosts.link(fault.nodes[0], up=False)
            case "partition":
                for a, b in fault.cuts():
                    hosts.cut(a, b)
            case "kill":
                for k in fault.nodes:
                    net.down.add(k)
                    net.kill(k, signal.SIGKILL)
            case "pause":
                for k in fault.nodes:
                    net.pause(k)
            case "slow":
                for k in fault.nodes:
                    hosts.throttle(k, fault.kbit)
            case "disk":
                for k in fault.nodes:
                    net.disk_full.add(k)
                    fill(net.disk(k))

    def heal(self, fault: Fault) -> None:
        net, hosts = self.net, self.hosts
        match fault.kind:
            case "partition" if fault.shape == "isolated":
                hosts.link(fault.nodes[0], up=True)
            case "partition":
                for a, b in fault.cuts():
                    hosts.mend(a, b)
            case "kill":
                for k in fault.nodes:
                    net.start_node(k)
                    net.down.discard(k)
            case "pause":
                for k in fault.nodes:
                    net.resume(k)
            case "slow":
                for k in fault.nodes:
                    hosts.unthrottle(k)
            case "disk":
                for k in fault.nodes:
                    empty(net.disk(k))
                    net.disk_freed(k, self.clock())
        self._record(fault, HEAL)
