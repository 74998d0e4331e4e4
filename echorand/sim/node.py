"""A simulated node: the real consensus core, driven by the simulated clock and network."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from echorand.core.consensus import Consensus, Ledger, Tip
from echorand.core.events import (
    Action,
    BlockValidated,
    CertifiedBlocksReceived,
    Commit,
    Event,
    FetchBlock,
    Finalized,
    ForkEvidence,
    Halted,
    MessagesReceived,
    Relay,
    Send,
    SetTimer,
    SuspectFork,
    Sync,
    TimerFired,
    ValidateBlock,
)
from echorand.core.signed import Signed, SignedLog
from echorand.core.validate import Verifier
from echorand.protocol import forks
from echorand.protocol.finality import FinalCertificate
from echorand.protocol.params import Params
from echorand.protocol.signing import Signer
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
        keys: Mapping[int, Signer],
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
        self.core: Consensus | None = None
        self._epoch = 0
        self._round_start = 0
        self._inbox: list[ConsensusMessage] = []
        self.mute_producer = False

    # --- life cycle -----------------------------------------------------------------

    @property
    def online(self) -> bool:
        return self.core is not None

    def boot(self, params: Params, ledger: Ledger, verifier: Verifier, genesis: Tip) -> None:
        """Start (or restart) from the chain this node has stored."""
        tip = genesis
        for block, cert in self.chain:
            tip = tip.after(block, params, cert)
        self.core = Consensus(params, self.keys, ledger, verifier, tip, signed=SignedLog(self.disk))
        self._epoch += 1
        self._inbox = []  # a flush scheduled before belongs to the old core
        self._round_start = self.sim.clock.now_ms
        self.sim.network.online[self.index] = True
        self._execute(self.core.start(self.sim.clock.now_ms))

    def crash(self) -> None:
        self.core = None
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
        if self.core is not None:
            self._execute(self.core.handle(event))

    def _flush(self, epoch: int) -> None:
        if epoch != self._epoch or not self._inbox:
            return
        batch, self._inbox = tuple(self._inbox), []
        self.deliver(MessagesReceived(self.sim.clock.now_ms, batch))

    def _later(self, at_ms: int, make: Callable[[], Event]) -> None:
        epoch = self._epoch
        self.sim.clock.at(at_ms, lambda: self.deliver(make()) if epoch == self._epoch else None)

    # --- actions -----------------------------------------------------------------------

    def _execute(self, actions: list[Action]) -> None:
        now = self.sim.clock.now_ms
        for action in actions:
            match action:
                case Send(msg, prev_hash):
                    self.disk.append(Signed(prev_hash, msg))
                    self._send(msg)
                case Relay(msg) if self.behaviour.relays:
                    self.sim.broadcast(self.index, msg, None, 0)
                case SetTimer(at_ms, round, step, kind):
                    self._later(
                        at_ms, lambda a=at_ms, r=round, s=step, k=kind: TimerFired(a, r, s, k)
                    )
                case ValidateBlock(block):
                    ok = self.sim.payload_valid(block)
                    self._later(now, lambda h=block.hash, ok=ok: BlockValidated(now, h, ok))
                case FetchBlock(round, block_hash):
                    self.sim.fetch(self, round, block_hash)
                case Sync(from_round):
                    self.sim.sync(self, from_round)
                case Commit(block, certificate):
                    self._commit(block, certificate, now)
                case ForkEvidence() as evidence:
                    self.evidence.append(evidence)
                case SuspectFork():
                    for peer in self.sim.network.neighbours[self.index]:
                        self.sim.check_fork(self, peer)
                case Finalized(cert):
                    self._finalized(cert)
                case Halted(reason):
                    self._halt(reason)
                case _:
                    pass

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
            self._halt(f"round {plan.fork_round}: two final blocks on chains that part there")
        elif plan.choice is forks.Choice.THEIRS:
            self._switch(plan)
        elif self.sim.checked_suffix(self.chain[: plan.fork_round - 1], plan.theirs[:1]):
            (_, ours), (block, theirs) = plan.ours[0], plan.theirs[0]
            self.evidence.append(ForkEvidence(plan.fork_round, ours, theirs, block))
            if plan.fork_round in self.finals:
                self._halt(f"round {plan.fork_round}: a valid certificate against a final block")
            else:
                self._unstick()
        else:
            self._unstick()

    def _unstick(self) -> None:
        """Our chain stays: a round that decided the other chain's block restarts on our tip
        (as `echorand.node.node.Node._unstick`)."""
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

    def _finalized(self, cert: FinalCertificate) -> None:
        self.finals[cert.round] = cert.block_hash
        self.final_certs[cert.round] = cert
        self.final_round = max(self.final_round, cert.round)
        self.sim.record_final(self, cert.round, cert.block_hash)

    def _halt(self, reason: str) -> None:
        """Stop for good: a conflict with a final block (the adversary exceeded f)."""
        self.halted = reason
        self.crash()

    def _commit(self, block: Block, cert: Certificate, now: int) -> None:
        self.sim.record_commit(self, block)
        self.chain.append((block, cert))
        self.blocks.setdefault(block.hash, block)
        self.commit_ms.append(now)
        self.round_ms.append(now - self._round_start)
        self._round_start = now
        self.sim.on_commit(self)
