"""One executor, two hosts: the same scenarios against the simulator's host (`SimNode`, on its
clock) and the node's (`NodeHost`, on an asyncio loop with the real LMDB `Ledger` in a temp
dir). Only the network is a stand-in (`Outlet`: no sockets); the core, the executor, the
ledger, the mempool and the payload checks are the real ones.

Each scenario feeds events and checks what the executor carried out, as the host saw it
(`Recorder` passes every call on to the real host and notes it)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Protocol

import pytest

from echorand.core.consensus import Consensus
from echorand.core.events import CertifiedBlocksReceived, Committed, ForkEvidence, MessagesReceived
from echorand.core.executor import Executor, Host
from echorand.core.validate import DropReason
from echorand.net.peer import Peer
from echorand.node.config import NodeConfig
from echorand.node.node import Node
from echorand.protocol.finality import FinalCertificate
from echorand.sim.simulation import SimConfig, Simulation
from echorand.tools.devnet import DEVNET_PARAMS
from echorand.tools.genesis import create_devnet, node_keys_path
from echorand.wire.messages import Block, Certificate, ConsensusMessage, decode

ROUNDS = 3


# --- what the executor carried out, as the host saw it -----------------------------------


@dataclass
class Recorder:
    """A `Host` that notes each call, then makes it on the real host."""

    host: Host
    calls: list[tuple[str, object]] = field(default_factory=list)

    def now_ms(self) -> int:
        return self.host.now_ms()

    def send(self, message: ConsensusMessage, prev_hash: bytes) -> None:
        self.calls.append(("send", message))
        self.host.send(message, prev_hash)

    def relay(self, message: ConsensusMessage) -> None:
        self.calls.append(("relay", message))
        self.host.relay(message)

    def set_timer(self, at_ms: int, fire: Callable[[], None]) -> None:
        self.calls.append(("set_timer", at_ms))
        self.host.set_timer(at_ms, fire)

    def validate_block(self, block: Block, answer: Callable[[bool], None]) -> bool | None:
        self.calls.append(("validate_block", block))
        return self.host.validate_block(block, answer)

    def fetch_block(self, round: int, block_hash: bytes) -> None:
        self.calls.append(("fetch_block", round))
        self.host.fetch_block(round, block_hash)

    def sync(self, from_round: int) -> None:
        self.calls.append(("sync", from_round))
        self.host.sync(from_round)

    def commit(self, block: Block, certificate: Certificate) -> None:
        self.calls.append(("commit", block))
        self.host.commit(block, certificate)

    def disconnect(self, message: ConsensusMessage, reason: DropReason) -> None:
        self.calls.append(("disconnect", reason))
        self.host.disconnect(message, reason)

    def fork_evidence(self, evidence: ForkEvidence) -> None:
        self.calls.append(("fork_evidence", evidence))
        self.host.fork_evidence(evidence)

    def suspect_fork(self, round: int, block_hash: bytes, why: str) -> None:
        self.calls.append(("suspect_fork", round))
        self.host.suspect_fork(round, block_hash, why)

    def finalized(self, certificate: FinalCertificate) -> None:
        self.calls.append(("finalized", certificate))
        self.host.finalized(certificate)

    def halt(self, reason: str, evidence: tuple[object, ...] = ()) -> None:
        self.calls.append(("halt", reason))
        self.host.halt(reason, evidence)

    def flush(self) -> None:
        self.host.flush()

    def of(self, name: str) -> list[object]:
        return [what for call, what in self.calls if call == name]


# --- the two hosts -----------------------------------------------------------------------


class Harness(Protocol):
    """One node under test on one kind of host, holding every account of its chain."""

    recorder: Recorder

    @property
    def executor(self) -> Executor: ...

    def start(self) -> None:
        """Start consensus at the node's tip (the recorder sees what follows)."""
        ...

    def run_until(self, done: Callable[[], bool]) -> None:
        """Let time pass (timers fire) until `done()`."""
        ...

    def chain(self) -> list[tuple[Block, Certificate]]:
        """The blocks the host holds, with their certificates, from round 1."""
        ...

    def durable(self) -> set[bytes]:
        """The encodings of the messages the host made durable (PROTOCOL §6)."""
        ...

    def left(self) -> list[bytes]:
        """The encodings of this node's own messages that left it, in order."""
        ...

    def early(self) -> list[bytes]:
        """Those of them that were not durable yet when they left."""
        ...

    def final_round(self) -> int: ...

    def close(self) -> None: ...


class SimHarness:
    """The simulator's node 0, alone in a one-node simulation (its clock, no peers)."""

    def __init__(self, seed: int = 1) -> None:
        config = SimConfig(nodes=1, accounts=4, n_c=60, n_g=10, seed=seed)
        self.sim = Simulation(config)
        self.node = self.sim.nodes[0]
        self.recorder = Recorder(self.node)
        self.sent: list[bytes] = []
        self.not_durable: list[bytes] = []
        broadcast = self.sim.broadcast

        def watched(src: int, msg: ConsensusMessage, targets: object, delay: int) -> None:
            self.sent.append(msg.encode())
            if msg.encode() not in self.durable():
                self.not_durable.append(msg.encode())
            broadcast(src, msg, targets, delay)  # type: ignore[arg-type]

        self.sim.broadcast = watched  # type: ignore[method-assign]

    @property
    def executor(self) -> Executor:
        assert self.node.executor is not None
        return self.node.executor

    def start(self) -> None:
        sim = self.sim
        self.node.boot(sim.params, sim.ledger, sim.verifier, sim.genesis)
        self.executor.host = self.recorder

    def run_until(self, done: Callable[[], bool]) -> None:
        self.sim.clock.run_until(60_000, done)
        assert done()

    def chain(self) -> list[tuple[Block, Certificate]]:
        return list(self.node.chain)

    def durable(self) -> set[bytes]:
        return {record.message.encode() for record in self.node.disk}

    def left(self) -> list[bytes]:
        return self.sent

    def early(self) -> list[bytes]:
        return self.not_durable

    def final_round(self) -> int:
        return self.node.final_round

    def close(self) -> None:
        pass


@dataclass
class Outlet:
    """The network as the node's host sees it, without sockets: what leaves is noted."""

    durable: Callable[[], set[bytes]]
    """What the node made durable, at the moment of asking."""
    frames: list[bytes] = field(default_factory=list)
    early: list[bytes] = field(default_factory=list)
    relayed: list[bytes] = field(default_factory=list)
    penalized: list[DropReason] = field(default_factory=list)

    @property
    def peers(self) -> list[Peer]:
        return []

    def broadcast_frames(
        self, frames: Sequence[bytes], exclude: Peer | None = None, *, mark: bool = True
    ) -> int:
        if mark:
            durable = self.durable()
            self.early.extend(f for f in frames if f not in durable)
        (self.frames if mark else self.relayed).extend(frames)
        return len(frames)

    def penalize(self, peer: Peer, reason: DropReason, detail: str = "") -> None:
        self.penalized.append(reason)


class NodeHarness:
    """A real `Node` (LMDB ledger in a temp dir, every account's key) whose host runs on an
    asyncio loop; only its network is the `Outlet` stand-in."""

    def __init__(self, path: Path, genesis_dir: Path) -> None:
        config = NodeConfig(data_dir=path, genesis=genesis_dir, keys=node_keys_path(genesis_dir, 0))
        self.node = Node(config)
        self.loop = asyncio.new_event_loop()
        self.outlet = Outlet(self.durable)
        self.node.host.start(self.loop)
        self.node.host.outlet = self.outlet
        self.recorder = Recorder(self.node.host)

    @property
    def executor(self) -> Executor:
        assert self.node.executor is not None
        return self.node.executor

    def start(self) -> None:
        self.node.start_consensus()
        self.executor.host = self.recorder

    def run_until(self, done: Callable[[], bool]) -> None:
        async def wait() -> None:
            while not done():
                await asyncio.sleep(0.01)

        self.loop.run_until_complete(asyncio.wait_for(wait(), 120))

    def chain(self) -> list[tuple[Block, Certificate]]:
        ledger = self.node.ledger
        return list(ledger.blocks_range(1, ledger.tip)) if ledger.tip else []

    def durable(self) -> set[bytes]:
        return {record.message.encode() for record in self.node.ledger.signed_records()}

    def left(self) -> list[bytes]:
        return self.outlet.frames

    def early(self) -> list[bytes]:
        return self.outlet.early

    def final_round(self) -> int:
        return self.node.ledger.final_round

    def close(self) -> None:
        self.node.stop_consensus()
        self.loop.close()
        self.node.ledger.close()


@pytest.fixture(scope="module")
def genesis_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("executor") / "genesis"
    create_devnet(path, accounts=4, nodes=1, seed="executor", params=DEVNET_PARAMS)
    return path


Make = Callable[[], Harness]


@pytest.fixture(params=["sim", "node"])
def make(request: pytest.FixtureRequest, genesis_dir: Path, tmp_path: Path) -> Iterator[Make]:
    """Harnesses of one kind of host, all on one chain (the same genesis and keys)."""
    made: list[Harness] = []

    def new() -> Harness:
        if request.param == "sim":
            harness: Harness = SimHarness()
        else:
            harness = NodeHarness(tmp_path / f"node{len(made)}", genesis_dir)
        made.append(harness)
        return harness

    yield new
    for harness in made:
        harness.close()


def committed(harness: Harness) -> int:
    return len(harness.recorder.of("commit"))


# --- scenarios ---------------------------------------------------------------------------


def test_a_node_with_all_the_stake_commits_round_after_round(make: Make) -> None:
    """Timers only: each round decides, its block is committed to the host's chain, and the
    core begins the next round once the host holds it (`Committed`)."""
    h = make()
    h.start()
    h.run_until(lambda: committed(h) >= ROUNDS)
    blocks = h.recorder.of("commit")
    chain = h.chain()
    assert [b.hash for b, _ in chain][: len(blocks)] == [b.hash for b in blocks]  # type: ignore[attr-defined]
    for (before, _), (after, cert) in pairwise(chain):
        assert after.round == before.round + 1 and after.prev_hash == before.hash
        assert cert.round == after.round
    assert h.executor.core.current_round == len(chain) + 1


def test_no_message_of_a_round_leaves_before_the_round_before_is_committed(make: Make) -> None:
    """`Commit` is carried out before anything of the next round: the ledger holds block r
    when round r + 1 signs (its stake table, its payload)."""
    h = make()
    h.start()
    h.run_until(lambda: committed(h) >= ROUNDS)
    top = 0
    for call, what in h.recorder.calls:
        if call == "commit":
            top = what.round  # type: ignore[attr-defined]
        elif call == "send":
            assert what.round <= top + 1, f"{what} sent with round {top} not committed"  # type: ignore[attr-defined]
    assert top >= ROUNDS


def test_every_message_that_leaves_was_made_durable_first(make: Make) -> None:
    h = make()
    h.start()
    h.run_until(lambda: committed(h) >= 2)
    left = h.left()
    assert left, "the node sent nothing"
    assert h.early() == []
    assert set(left) <= h.durable()
    sent = {m.encode() for m in h.recorder.of("send")}  # type: ignore[attr-defined]
    assert sent <= set(left) | h.durable()


def test_final_votes_make_the_committed_blocks_final(make: Make) -> None:
    h = make()
    h.start()
    h.run_until(lambda: h.final_round() >= 2)
    finals = h.recorder.of("finalized")
    hashes = {b.round: b.hash for b, _ in h.chain()}
    assert finals
    for cert in finals:
        assert hashes[cert.round] == cert.block_hash  # type: ignore[attr-defined]


def test_certified_blocks_from_sync_are_committed_in_order(make: Make) -> None:
    """Several certified blocks in one event: each is committed, and the next is checked in
    the round its predecessor's `Committed` began (PROTOCOL §6)."""
    ahead = make()
    ahead.start()
    ahead.run_until(lambda: committed(ahead) >= ROUNDS)
    chain = ahead.chain()[:ROUNDS]
    behind = make()
    behind.start()
    now = behind.recorder.now_ms()
    behind.executor.feed(CertifiedBlocksReceived(now, tuple(chain)))
    assert [b.hash for b in behind.recorder.of("commit")] == [b.hash for b, _ in chain]  # type: ignore[attr-defined]
    assert [b.hash for b, _ in behind.chain()] == [b.hash for b, _ in chain]
    assert behind.executor.core.current_round == ROUNDS + 1


def test_a_certificate_that_does_not_verify_commits_nothing(make: Make) -> None:
    ahead = make()
    ahead.start()
    ahead.run_until(lambda: committed(ahead) >= 1)
    block, cert = ahead.chain()[0]
    forged = Certificate(cert.round, cert.step, cert.b, cert.block_hash, cert.leader, [])
    behind = make()
    behind.start()
    behind.executor.feed(CertifiedBlocksReceived(behind.recorder.now_ms(), ((block, forged),)))
    assert behind.recorder.of("commit") == [] and behind.chain() == []
    assert behind.executor.core.stats[DropReason.BAD_CERTIFICATE] == 1


def test_a_peer_message_that_counts_is_relayed_once(make: Make) -> None:
    """The messages of another node on the same chain (its round 1) are counted and
    relayed; the same batch again relays nothing more."""
    other = make()
    other.start()
    other.run_until(lambda: committed(other) >= 1)
    theirs = tuple(m for m in map(decode, other.left()) if m.round == 1)
    h = make()
    h.start()
    h.executor.feed(MessagesReceived(h.recorder.now_ms(), theirs))  # type: ignore[arg-type]
    relayed = [m.encode() for m in h.recorder.of("relay")]  # type: ignore[attr-defined]
    assert relayed and len(relayed) == len(set(relayed))
    assert set(relayed) <= {m.encode() for m in theirs}
    h.executor.feed(MessagesReceived(h.recorder.now_ms(), theirs))  # type: ignore[arg-type]
    assert len(h.recorder.of("relay")) == len(relayed)


def test_a_retired_executor_carries_out_nothing(make: Make) -> None:
    """After a restart of the core (a switch, an unstick, a crash) the old one's timers and
    answers find nothing."""
    h = make()
    h.start()
    executor = h.executor
    executor.retire()
    before = list(h.recorder.calls)
    executor.feed(Committed(h.recorder.now_ms(), 1, bytes(32)))  # would raise if fed
    assert h.recorder.calls == before
    assert executor.core.current_round == 1


def test_commit_is_answered_before_any_other_event(make: Make) -> None:
    """The core refuses an event between `Commit` and `Committed`, and a `Committed` that
    answers no `Commit`."""
    h = make()
    h.start()
    core: Consensus = h.executor.core
    with pytest.raises(RuntimeError, match="answers no Commit"):
        core.handle(Committed(h.recorder.now_ms(), 1, bytes(32)))
    refused: list[str] = []
    commit = h.recorder.host.commit

    def commit_and_poke(block: Block, certificate: Certificate) -> None:
        try:
            core.handle(MessagesReceived(h.recorder.now_ms(), ()))
        except RuntimeError as e:
            refused.append(str(e))
        commit(block, certificate)

    h.recorder.host.commit = commit_and_poke  # type: ignore[method-assign]
    h.run_until(lambda: committed(h) >= 1)
    assert refused == ["Commit is answered by Committed before any other event"]
    assert core.current_round == 2
