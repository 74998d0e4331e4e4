"""A simulated node: the real consensus core, driven by the simulated clock and network.

`SimNode` is the core's `Host` (`echorand.core.executor`) in the simulator: the same executor
as the real node's carries out the core's actions through it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from echorand.core.consensus import Consensus, Ledger, Tip
from echorand.core.events import CertifiedBlocksReceived, Event, ForkEvidence, MessagesReceived
from echorand.core.executor import Executor
from echorand.core.signed import Signed, SignedLog
from echorand.core.validate import DropReason, Verifier
from echorand.protocol import forks
from echorand.protocol.finality import FinalCertificate
from echorand.protocol.params import Params
from echorand.protocol.signing import Leader
from echorand.protocol.tally import empty_value
from echorand.sim.byzantine import Behaviour, Known
from echorand.wire.messages import Block, Certificate, ConsensusMessage, GcBlock, GcSignature

if TYPE_CHECKING:
    from echorand.sim.simulation import Simulation


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
        self.commit_ms: list[int] = []
        self.round_ms: list[int] = []
        """Simulated time each round took at this node (start of round to commit)."""
        self.blocks: dict[bytes, Block] = {}
        self.evidence: list[ForkEvidence] = []
        """Two certificates for different values of one round that this node saw."""
        self.finals: dict[int, bytes] = {}
        self.final_certs: dict[int, FinalCertificate] = {}
        self.unsticks = 0
        """Rounds restarted on our tip after deciding a block of the other chain."""
        self.refused_chains = 0
        """Peer chains that part from ours below our last final block (never followed)."""
        """Round -> H(B_r) of the blocks this node saw become final (PROTOCOL §6)."""
        self.final_round = 0
        """Its last final block: nothing at or below it is ever rolled back."""
        self.halted: str | None = None
        self.rollbacks = 0
        self.rolled_back = 0
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
        one batch. A producer's message of our next round on another H(B_{r-1}) means `src`
        may hold another chain: compare them (PROTOCOL §6)."""
        if self.core is None:
            return
        if isinstance(msg, GcBlock | GcSignature) and 1 <= msg.round <= self.tip + 1:
            prev = msg.block.prev_hash if isinstance(msg, GcBlock) else msg.prev_hash
            if prev != self.hash(msg.round - 1):
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
        now = self.sim.clock.now_ms
        self.sim.record_commit(self, block)
        self.chain.append((block, certificate))
        self.blocks.setdefault(block.hash, block)
        self.commit_ms.append(now)
        self.round_ms.append(now - self._round_start)
        self._round_start = now
        self.sim.on_commit(self)

    def disconnect(self, message: ConsensusMessage, reason: DropReason) -> None:
        """The simulator has no peer scores: a malicious message costs its sender nothing."""

    def fork_evidence(self, evidence: ForkEvidence) -> None:
        self.evidence.append(evidence)

    def suspect_fork(self, round: int, block_hash: bytes) -> None:
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

    # --- the chain, as the fork choice reads it (forks.ChainView) --------------------------

    @property
    def tip(self) -> int:
        return len(self.chain)

    def hash(self, round: int) -> bytes | None:
        if round == 0:
            return self.sim.genesis.block_hash
        return self.chain[round - 1][0].hash if 1 <= round <= self.tip else None

    def block(self, round: int) -> Block | None:
        return self.chain[round - 1][0] if 1 <= round <= self.tip else None

    def certificate(self, round: int) -> Certificate | None:
        return self.chain[round - 1][1] if 1 <= round <= self.tip else None

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
        self, blocks: list[tuple[Block, Certificate]], final: FinalCertificate | None = None
    ) -> None:
        """A peer's chain from our first round that may be rolled back, and the final
        certificate of its last final block: the fork choice (`echorand.protocol.forks.plan`)."""
        if self.core is None or self.halted is not None or not blocks:
            return
        first = blocks[0][0].round
        their_final = self.sim.proven_final(self.chain[: first - 1], blocks, final)
        try:
            plan = forks.plan(self, blocks, their_final)
        except forks.ForkError:
            self.refused_chains += 1  # it parts from ours below our last final block: theirs
            self._unstick()  # is the chain that cannot go on, its owner the one to switch
            return
        if plan is None:
            return
        if plan.choice is forks.Choice.HALT:
            self.halt(f"round {plan.fork_round}: two final blocks on chains that part there")
        elif plan.choice is forks.Choice.THEIRS:
            self._switch(plan)
        elif self.sim.checked_suffix(self.chain[: plan.fork_round - 1], plan.theirs[:1]):
            (_, ours), (block, theirs) = plan.ours[0], plan.theirs[0]
            self.evidence.append(ForkEvidence(plan.fork_round, ours, theirs, block))
            if plan.fork_round in self.finals:
                self.halt(f"round {plan.fork_round}: a valid certificate against a final block")
            else:
                self._unstick()
        else:
            self._unstick()

    def _unstick(self) -> None:
        """Our chain stays: a round that decided the other chain's block restarts on our tip
        (as `echorand.node.chains.Chains.unstick`)."""
        if self.core is not None and self.core.decided_elsewhere:
            self.unsticks += 1
            self.boot(self.sim.params, self.sim.ledger, self.sim.verifier, self.sim.genesis)

    def _switch(self, plan: forks.ForkPlan) -> None:
        """Roll back to the fork point, apply the other chain (each certificate checked),
        and restart the core on it: it abstains in the slots it filled on the old chain."""
        assert plan.fork_round > self.final_round, "never past the last final block"
        kept = self.chain[: plan.rollback_to]
        checked = self.sim.checked_suffix(kept, plan.theirs)
        if len(checked) < len(plan.theirs):
            return  # a certificate of theirs failed: keep ours
        self.rollbacks += 1
        self.rolled_back += len(self.chain) - len(kept)
        self.chain = kept + list(checked)
        self.commit_ms = self.commit_ms[: len(kept)] + [self.sim.clock.now_ms] * len(checked)
        for block, _ in checked:
            self.blocks.setdefault(block.hash, block)
            self.sim.record_commit(self, block)
        (_, ours), (block, theirs) = plan.ours[0], checked[0]
        self.evidence.append(ForkEvidence(plan.fork_round, ours, theirs, block))
        self.boot(self.sim.params, self.sim.ledger, self.sim.verifier, self.sim.genesis)
        self.sim.on_commit(self)
