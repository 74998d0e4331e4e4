"""A simulated node: the real consensus core, driven by the simulated clock and network."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from echorand.consensus import Consensus, Ledger, Tip
from echorand.events import (
    Action,
    BlockValidated,
    Commit,
    Event,
    FetchBlock,
    ForkEvidence,
    MessagesReceived,
    Relay,
    Send,
    SetTimer,
    Sync,
    TimerFired,
    ValidateBlock,
)
from echorand.messages import Block, Certificate, ConsensusMessage, GcBlock
from echorand.params import Params
from echorand.signed import Signed, SignedLog
from echorand.signing import Signer
from echorand.sim.byzantine import Behaviour, Known
from echorand.tally import empty_value
from echorand.validate import Verifier

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
        self._round_start = self.sim.clock.now_ms
        self.sim.network.online[self.index] = True
        self._execute(self.core.start(self.sim.clock.now_ms))

    def crash(self) -> None:
        self.core = None
        self._epoch += 1
        self._inbox = []
        self.sim.network.online[self.index] = False

    # --- input ------------------------------------------------------------------------

    def receive(self, msg: ConsensusMessage) -> None:
        """A message arrives; all that arrive at the same instant form one batch."""
        if self.core is None:
            return
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

    def _commit(self, block: Block, cert: Certificate, now: int) -> None:
        self.chain.append((block, cert))
        self.blocks.setdefault(block.hash, block)
        self.commit_ms.append(now)
        self.round_ms.append(now - self._round_start)
        self._round_start = now
        self.sim.on_commit(self)
