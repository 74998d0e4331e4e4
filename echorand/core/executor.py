"""One driver for the consensus core: it carries out the core's actions through a `Host`.

The core (`echorand.core.consensus`) is sans-IO: it returns actions and waits for the answers
as events. `Executor` is the one place that turns each action into a call of the host,
and each answer into the event the core expects, for the real node (`echorand.node.host`, on
uvloop and LMDB) and for the simulator (`echorand.sim.node`, on its clock and network)
alike. A `Commit` is carried out, then answered at once by `Committed`: the core begins
the next round on a ledger that holds the block.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Protocol, assert_never

from echorand.core.events import (
    Action,
    BlockValidated,
    Commit,
    Committed,
    Disconnect,
    Event,
    FetchBlock,
    Finalized,
    ForkEvidence,
    Halted,
    Relay,
    Send,
    SetTimer,
    SuspectFork,
    Sync,
    TimerFired,
    ValidateBlock,
)

if TYPE_CHECKING:
    from echorand.core.consensus import Consensus
    from echorand.core.validate import DropReason
    from echorand.protocol.finality import FinalCertificate
    from echorand.wire.messages import Block, Certificate, ConsensusMessage


class Host(Protocol):
    """What a node's surroundings do for the executor: its clock, network and ledger."""

    def now_ms(self) -> int:
        """The core's time: integer milliseconds."""
        ...

    def send(self, message: ConsensusMessage, prev_hash: bytes) -> None:
        """Make a message this node signed (on `prev_hash`) durable, then broadcast it (the
        host may hold both until `flush`, but never broadcast before the message is durable)."""
        ...

    def relay(self, message: ConsensusMessage) -> None:
        """Forward a peer's message to the other peers."""
        ...

    def set_timer(self, at_ms: int, fire: Callable[[], None]) -> None:
        """Call `fire()` once the clock reaches `at_ms`."""
        ...

    def validate_block(self, block: Block, answer: Callable[[bool], None]) -> bool | None:
        """Whether the payload of `block` applies to the ledger; None when the host answers
        later, by calling `answer(ok)` (never from inside this call)."""
        ...

    def fetch_block(self, round: int, block_hash: bytes) -> None:
        """Get a decided block this node does not hold (the answer, `BlockReceived`, comes
        through `Executor.feed`)."""
        ...

    def sync(self, from_round: int) -> None:
        """Get certified blocks from `from_round` on (`CertifiedBlocksReceived`, later)."""
        ...

    def commit(self, block: Block, certificate: Certificate) -> None:
        """Append `block` to the chain, now (it raises if it cannot)."""
        ...

    def disconnect(self, message: ConsensusMessage, reason: DropReason) -> None:
        """Charge the peer `message` came from (a malicious `reason`)."""
        ...

    def fork_evidence(self, evidence: ForkEvidence) -> None:
        """Keep and report two valid certificates for different values of one round."""
        ...

    def suspect_fork(self, round: int, block_hash: bytes, why: str) -> None:
        """Compare chains with the peers (the fork choice, PROTOCOL §6); `why`: what raised
        the suspicion, for the log."""
        ...

    def finalized(self, certificate: FinalCertificate) -> None:
        """A block this node committed is final: keep the proof."""
        ...

    def halt(self, reason: str, evidence: tuple[object, ...]) -> None:
        """Consensus stopped for good on a conflict with a final block."""
        ...

    def flush(self) -> None:
        """The end of a batch of actions: what `send` and `relay` held leaves now."""
        ...


class Executor:
    """Feeds one core and carries out its actions through `host`, until `retire()`: then
    the timers and late answers it set up find nothing (a restarted core has its own)."""

    def __init__(self, core: Consensus, host: Host) -> None:
        self.core = core
        self.host = host
        self.live = True

    def retire(self) -> None:
        self.live = False

    def start(self) -> None:
        """Start the core's round and carry out what it asks."""
        queue: deque[Event] = deque()
        self._carry_out(self.core.start(self.host.now_ms()), queue)
        self._drain(queue)

    def feed(self, event: Event) -> None:
        """Hand `event` to the core and carry out its actions and those of their answers."""
        if self.live:
            self._drain(deque([event]))

    def _drain(self, queue: deque[Event]) -> None:
        while queue and self.live:
            self._carry_out(self.core.handle(queue.popleft()), queue)
        self.host.flush()

    def _carry_out(self, actions: list[Action], queue: deque[Event]) -> None:
        host = self.host
        for action in actions:
            match action:
                case Send(message, prev_hash):
                    host.send(message, prev_hash)
                case Relay(message):
                    host.relay(message)
                case SetTimer() as timer:
                    host.set_timer(timer.at_ms, partial(self._fire, timer))
                case ValidateBlock(block):
                    ok = host.validate_block(block, partial(self._valid, block.hash))
                    if ok is not None:
                        queue.append(BlockValidated(host.now_ms(), block.hash, ok))
                case FetchBlock(round, block_hash):
                    host.fetch_block(round, block_hash)
                case Sync(from_round):
                    host.sync(from_round)
                case Commit(block, certificate):
                    host.commit(block, certificate)
                    queue.appendleft(Committed(host.now_ms(), block.round, block.hash))
                case Disconnect(message, reason):
                    host.disconnect(message, reason)
                case ForkEvidence() as evidence:
                    host.fork_evidence(evidence)
                case SuspectFork(round, block_hash, why):
                    host.suspect_fork(round, block_hash, why)
                case Finalized(certificate):
                    host.finalized(certificate)
                case Halted(reason, evidence):
                    host.halt(reason, evidence)
                case _:
                    assert_never(action)

    def _fire(self, timer: SetTimer) -> None:
        self.feed(TimerFired(self.host.now_ms(), timer.round, timer.step, timer.kind))

    def _valid(self, block_hash: bytes, ok: bool) -> None:
        self.feed(BlockValidated(self.host.now_ms(), block_hash, ok))
