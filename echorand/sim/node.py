"""A simulated node: the real consensus core, driven by the simulated clock and network.

`SimNode` is the core's `Host` (`echorand.core.executor`) in the simulator: the same executor
as the real node's carries out the core's actions through it. A peer's chain goes through
the node's fork choice too (`echorand.core.forkchoice.ForkChoice`), whose host here is
`SimChains`, on `SimNode.chain`."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from echorand.core.consensus import Consensus, Ledger, Tip, tip_context
from echorand.core.events import CertifiedBlocksReceived, Event, ForkEvidence, MessagesReceived
from echorand.core.executor import Executor
from echorand.core.forkchoice import ForkChoice, OutOfReach
from echorand.core.signed import Signed, SignedLog
from echorand.core.validate import DropReason, Verifier
from echorand.protocol.committee import RoundContext
from echorand.protocol.finality import FinalCertificate
from echorand.protocol.params import Params
from echorand.protocol.signing import Leader
from echorand.protocol.tally import empty_value
from echorand.sim.byzantine import Behaviour, Known
from echorand.wire.messages import Block, Certificate, ConsensusMessage, FinalProof, GcBlock

if TYPE_CHECKING:
    from echorand.sim.simulation import Simulation

log = logging.getLogger(__name__)
"""The fork choice's log lines: nowhere unless the program configures logging (a run has
many nodes, and its summary says what happened)."""
log.addHandler(logging.NullHandler())


class SimNode:
    """One node: its accounts' keys, its chain, and a core that is rebuilt on restart."""

    def __init__(
        self,
        index: int,
        sim: Simulation,
        keys: Mapping[int, Leader],
        behaviour: Behaviour,
        honest: bool,
    ) -> None:
        self.index = index
        self.sim = sim
        self.keys = keys
        self.behaviour = behaviour
        self.honest = honest
        self.chain: list[tuple[Block, Certificate]] = []
        self.tips: list[Tip] = [sim.genesis]
        """The core's tip after each block of `chain` (index 0: the genesis)."""
        self.commit_ms: list[int] = []
        self.round_ms: list[int] = []
        """Simulated time each round took at this node (start of round to commit)."""
        self.blocks: dict[bytes, Block] = {}
        self.evidence: list[ForkEvidence] = []
        """Two certificates for different values of one round that this node saw."""
        self.finals: dict[int, bytes] = {}
        """Round -> H(B_r) of the blocks this node saw become final (PROTOCOL §6)."""
        self.final_certs: dict[int, FinalCertificate] = {}
        self.final_round = 0
        """Its last final block: nothing at or below it is ever rolled back."""
        self.halted: str | None = None
        self.fork_choice: ForkChoice[int] = ForkChoice(SimChains(self), Counter(), log)
        """The node's fork choice (peers are named by their index)."""
        self.disk: list[Signed] = []
        """What the node signed, kept across crashes like the node's LMDB (PROTOCOL §6)."""
        self.executor: Executor | None = None
        self._epoch = 0
        self._round_start = 0
        self._inbox: list[ConsensusMessage] = []
        self.mute_producer = False

    # --- life cycle -----------------------------------------------------------------

    @property
    def core(self) -> Consensus | None:
        return self.executor.core if self.executor is not None else None

    @property
    def online(self) -> bool:
        return self.executor is not None

    @property
    def rollbacks(self) -> int:
        """Rollbacks to a fork point: a switch to another chain (or a trial of one that
        failed its checks and was undone)."""
        return self.fork_choice.stats["rollbacks"]

    @property
    def rolled_back(self) -> int:
        """Blocks removed by rollbacks."""
        return self.fork_choice.stats["rolled_back_blocks"]

    @property
    def unsticks(self) -> int:
        """Rounds restarted on our tip after deciding a block of the other chain."""
        return self.fork_choice.stats["unsticks"]

    @property
    def refused_chains(self) -> int:
        """Peer chains that do not attach to ours above our last final block (never
        followed)."""
        return self.fork_choice.stats["refused_chains"]

    def boot(self, params: Params, ledger: Ledger, verifier: Verifier, genesis: Tip) -> None:
        """Start (or restart) from the chain this node has stored."""
        tip = genesis
        for block, cert in self.chain:
            tip = tip.after(block, params, cert)
        core = Consensus(params, self.keys, ledger, verifier, tip, signed=SignedLog(self.disk))
        if self.executor is not None:
            self.executor.retire()  # its timers and answers belong to the old core
        self.executor = Executor(core, self)
        self._epoch += 1
        self._inbox = []  # a flush scheduled before belongs to the old core
        self._round_start = self.sim.clock.now_ms
        self.sim.network.online[self.index] = True
        self.executor.start()

    def crash(self) -> None:
        if self.executor is not None:
            self.executor.retire()
        self.executor = None
        self._epoch += 1
        self._inbox = []
        self.sim.network.online[self.index] = False

    # --- input ------------------------------------------------------------------------

    def receive(self, msg: ConsensusMessage, src: int) -> None:
        """A message arrives (from neighbour `src`); all that arrive at the same instant form
        one batch. A producer's message of a round we could roll back to (or of our next
        one) on another H(B_{r-1}) than ours means `src` may hold another chain: compare
        them (PROTOCOL §6)."""
        if self.core is None:
            return
        if self.fork_choice.another_chain(msg):
            self.sim.check_fork(self, src)
        if isinstance(msg, GcBlock):
            self.blocks.setdefault(msg.block.hash, msg.block)
        if not self._inbox:
            epoch = self._epoch
            self.sim.clock.at(self.sim.clock.now_ms, lambda: self._flush(epoch))
        self._inbox.append(msg)

    def deliver(self, event: Event) -> None:
        if self.executor is not None:
            self.executor.feed(event)

    def _flush(self, epoch: int) -> None:
        if epoch != self._epoch or not self._inbox:
            return
        batch, self._inbox = tuple(self._inbox), []
        self.deliver(MessagesReceived(self.sim.clock.now_ms, batch))

    # --- the host (echorand.core.executor.Host) -------------------------------------------------

    def now_ms(self) -> int:
        return self.sim.clock.now_ms

    def send(self, message: ConsensusMessage, prev_hash: bytes) -> None:
        self.disk.append(Signed(prev_hash, message))
        self._send(message)

    def relay(self, message: ConsensusMessage) -> None:
        if self.behaviour.relays:
            self.sim.broadcast(self.index, message, None, 0)

    def set_timer(self, at_ms: int, fire: Callable[[], None]) -> None:
        self.sim.clock.at(at_ms, fire)

    def validate_block(self, block: Block, answer: Callable[[bool], None]) -> bool | None:
        ok = self.sim.payload_valid(block)
        self.sim.clock.at(self.sim.clock.now_ms, lambda: answer(ok))
        return None

    def fetch_block(self, round: int, block_hash: bytes) -> None:
        self.sim.fetch(self, round, block_hash)

    def sync(self, from_round: int) -> None:
        self.sim.sync(self, from_round)

    def commit(self, block: Block, certificate: Certificate) -> None:
        self.append(block, certificate)
        now = self.sim.clock.now_ms
        self.round_ms.append(now - self._round_start)
        self._round_start = now
        self.sim.on_commit(self)

    def disconnect(self, message: ConsensusMessage, reason: DropReason) -> None:
        """The simulator has no peer scores: a malicious message costs its sender nothing."""

    def fork_evidence(self, evidence: ForkEvidence) -> None:
        self.evidence.append(evidence)

    def suspect_fork(self, round: int, block_hash: bytes, why: str) -> None:
        for peer in self.sim.network.neighbours[self.index]:
            self.sim.check_fork(self, peer)

    def finalized(self, certificate: FinalCertificate) -> None:
        self.finals[certificate.round] = certificate.block_hash
        self.final_certs[certificate.round] = certificate
        self.final_round = max(self.final_round, certificate.round)
        self.sim.record_final(self, certificate.round, certificate.block_hash)

    def halt(self, reason: str, evidence: tuple[object, ...] = ()) -> None:
        """Stop for good: a conflict with a final block (the adversary exceeded f)."""
        self.halted = reason
        self.crash()

    def flush(self) -> None:
        """Messages leave at once in the simulator."""

    def _send(self, msg: ConsensusMessage) -> None:
        if self.mute_producer and msg.step == 1:
            return
        if isinstance(msg, GcBlock):
            self.blocks.setdefault(msg.block.hash, msg.block)
        peers = self.sim.network.neighbours[self.index]
        extra = self.sim.producer_delay_ms(self, msg)
        for targets, out, delay in self.behaviour.outgoing(msg, peers, self._known(msg.round)):
            self.sim.broadcast(self.index, out, targets, delay + extra)

    def _known(self, round: int) -> Known:
        """The block values of round `round` this node heard of, and its empty value."""
        rnd = self.core.round if self.core is not None else None
        if rnd is not None and rnd.ctx.round == round:
            values = tuple(sorted(p.value for p in rnd.gc.proposals.values()))
            return Known(values, rnd.ctx.empty_value)
        prev = self.chain[round - 2][0].hash if round >= 2 else self.sim.genesis.block_hash
        return Known((), empty_value(round, prev))

    # --- the chain, as the fork choice reads it (forkchoice.Chain) --------------------------

    @property
    def tip(self) -> int:
        return len(self.chain)

    @property
    def rollback_floor(self) -> int:
        """The simulator keeps every block: only a final one bounds a rollback."""
        return self.final_round

    def hash(self, round: int) -> bytes | None:
        if round == 0:
            return self.sim.genesis.block_hash
        return self.chain[round - 1][0].hash if 1 <= round <= self.tip else None

    def block(self, round: int) -> Block | None:
        return self.chain[round - 1][0] if 1 <= round <= self.tip else None

    def certificate(self, round: int) -> Certificate | None:
        return self.chain[round - 1][1] if 1 <= round <= self.tip else None

    def final_certificate(self, round: int) -> FinalCertificate | None:
        return self.final_certs.get(round)

    def append(self, block: Block, certificate: Certificate) -> None:
        """Add a block to the chain (decided here, synced, or of the chain we switch to)."""
        self.sim.record_commit(self, block)
        self.chain.append((block, certificate))
        self.tips.append(self.tips[-1].after(block, self.sim.params, certificate))
        self.blocks.setdefault(block.hash, block)
        self.commit_ms.append(self.sim.clock.now_ms)

    def rollback(self, to: int) -> list[Block]:
        """Remove the blocks after round `to` (never past the last final block)."""
        if not self.final_round <= to <= self.tip:
            raise ValueError(f"rollback to round {to}: final {self.final_round}, tip {self.tip}")
        removed = [block for block, _ in self.chain[to:]]
        del self.chain[to:], self.tips[to + 1 :], self.commit_ms[to:]
        return removed

    # --- final blocks and forks (PROTOCOL §6) -------------------------------------------

    def synced(self, peer: int, blocks: tuple[tuple[Block, Certificate], ...]) -> None:
        """Certified blocks from `peer`: to the core when they extend our chain; a block of
        our next round on another H(B_{r-1}) means the peer holds another chain."""
        if not blocks or self.core is None:
            return
        first = blocks[0][0]
        if first.round == self.tip + 1 and first.prev_hash != self.hash(self.tip):
            self.sim.check_fork(self, peer)
            return
        self.deliver(CertifiedBlocksReceived(self.sim.clock.now_ms, blocks))

    def on_chain(
        self,
        peer: int,
        blocks: Sequence[tuple[Block, Certificate]],
        proof: FinalProof | None = None,
    ) -> None:
        """`peer`'s chain from our first round that may be rolled back, and the proof of
        its last final block: the node's fork choice. A node that is down hears nothing."""
        if self.core is not None:
            self.fork_choice.on_fork(peer, blocks, proof)


class SimChains:
    """The fork choice's host in the simulator (`echorand.core.forkchoice.ChainHost`): the
    node's chain, the simulator's static ledger (the same stake table every round), a core
    restarted by `boot`. No transactions are applied and no peer is scored."""

    def __init__(self, node: SimNode) -> None:
        self.node = node

    @property
    def chain(self) -> SimNode:
        return self.node

    @property
    def halted(self) -> str | None:
        return self.node.halted

    @property
    def decided_elsewhere(self) -> bool:
        core = self.node.core
        return core is not None and core.decided_elsewhere

    @property
    def genesis_hash(self) -> bytes:
        return self.node.sim.genesis.chain

    @property
    def verifier(self) -> Verifier:
        return self.node.sim.verifier

    def public_key(self, account: int) -> bytes | None:
        return self.node.sim.ledger.public_key(account)

    def round_context(self, round: int) -> RoundContext:
        node = self.node
        if not 1 <= round <= node.tip + 1:
            raise OutOfReach(f"round {round}: the chain ends at {node.tip}")
        return tip_context(node.sim.params, node.sim.ledger, node.tips[round - 1])

    def stop_consensus(self) -> None:
        if self.node.executor is not None:
            self.node.executor.retire()

    def restart_consensus(self) -> None:
        node, sim = self.node, self.node.sim
        node.boot(sim.params, sim.ledger, sim.verifier, sim.genesis)
        sim.on_commit(node)

    def rollback(self, to: int) -> list[Block]:
        return self.node.rollback(to)

    def commit(self, block: Block, certificate: Certificate) -> None:
        self.node.append(block, certificate)

    def record_final(self, certificate: FinalCertificate) -> None:
        self.node.finalized(certificate)

    def rolled_back(self, blocks: Sequence[Block]) -> None:
        """The simulator applies no transactions: nothing goes back to a pool."""

    def fork_evidence(self, evidence: ForkEvidence) -> None:
        self.node.fork_evidence(evidence)

    def halt(self, reason: str) -> None:
        self.node.halt(reason)

    def penalize(self, peer: int, why: str) -> None:
        """The simulator has no peer scores."""
