"""What goes into the consensus core (events) and what comes out (actions).

The core is sans-IO: it never reads a clock, a socket, a disk or a random
source. Its caller feeds it events, each stamped with the caller's time
`now_ms`, and carries out the actions it returns, in order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING

from echorand.wire.messages import Block, Certificate, ConsensusMessage

if TYPE_CHECKING:
    from echorand.core.validate import DropReason
    from echorand.protocol.finality import FinalCertificate


class TimerKind(Enum):
    """Which deadline of a step a timer is (whitepaper: "schedule the timer after ...")."""

    LEADER = "leader"
    """Step 2 at 2λ: choose the leader among the producers heard so far."""
    DEADLINE = "deadline"
    """The end of a step: act on what has arrived (step 2: λ+Λ, step 3: 3λ+Λ, later: +2λ)."""


# --- events (in) -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MessagesReceived:
    """Consensus messages from peers, decoded, in arrival order (verified here, in one batch)."""

    now_ms: int
    messages: tuple[ConsensusMessage, ...]


@dataclass(frozen=True, slots=True)
class TimerFired:
    """A timer set by `SetTimer` has expired."""

    now_ms: int
    round: int
    step: int
    kind: TimerKind


@dataclass(frozen=True, slots=True)
class BlockValidated:
    """The answer to `ValidateBlock`: whether the block's payload PAY_r is valid."""

    now_ms: int
    block_hash: bytes
    ok: bool


@dataclass(frozen=True, slots=True)
class BlockReceived:
    """The answer to `FetchBlock`: a block (the core checks its hash)."""

    now_ms: int
    block: Block


@dataclass(frozen=True, slots=True)
class CertifiedBlocksReceived:
    """The answer to `Sync`: consecutive blocks with their certificates (the core checks them)."""

    now_ms: int
    blocks: tuple[tuple[Block, Certificate], ...]


@dataclass(frozen=True, slots=True)
class Committed:
    """The answer to `Commit`: the block of `round` is appended to the caller's chain (the
    ledger holds it: the next round's stake table and payload see it)."""

    now_ms: int
    round: int
    block_hash: bytes


Event = (
    MessagesReceived
    | TimerFired
    | BlockValidated
    | BlockReceived
    | CertifiedBlocksReceived
    | Committed
)


# --- actions (out) -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Send:
    """Broadcast a message this node made (signed by one of its accounts).

    The executor first makes it durable with `prev_hash`, the H(B_{r-1}) it was signed on
    (`echorand.core.signed`): a node that crashes and restarts must find every message it sent,
    so that it never signs another one for the same slot (PROTOCOL §6)."""

    message: ConsensusMessage
    prev_hash: bytes = field(default=b"", compare=False)


@dataclass(frozen=True, slots=True)
class Relay:
    """Forward a message received from a peer (the gossip rule of `echorand.core.validate`)."""

    message: ConsensusMessage


@dataclass(frozen=True, slots=True)
class SetTimer:
    """Deliver `TimerFired(at_ms, round, step, kind)` when the clock reaches `at_ms`."""

    at_ms: int
    round: int
    step: int
    kind: TimerKind


@dataclass(frozen=True, slots=True)
class ValidateBlock:
    """Check the payload of a proposed block against the ledger; answer `BlockValidated`."""

    block: Block


@dataclass(frozen=True, slots=True)
class FetchBlock:
    """The round decided a block this node does not hold: get it; answer `BlockReceived`."""

    round: int
    block_hash: bytes


@dataclass(frozen=True, slots=True)
class Sync:
    """This node is behind: get certified blocks from `from_round` on; answer
    `CertifiedBlocksReceived`."""

    from_round: int


@dataclass(frozen=True, slots=True)
class Commit:
    """Append `block` to the chain; `certificate` proves the decision (CERT_r); answer
    `Committed`. It is the last action of its list: the core goes on (the next round
    begins) once it has the answer, so that the ledger already holds the block."""

    block: Block
    certificate: Certificate


@dataclass(frozen=True, slots=True)
class ForkEvidence:
    """Two valid certificates for different values of one round (PROTOCOL §6): this node's
    decision (`ours`) and one that arrived (`theirs`, with its block). Keep both and report
    them; nothing is committed or replaced on their strength alone."""

    round: int
    ours: Certificate
    theirs: Certificate
    block: Block
    """The block `theirs` certifies."""


@dataclass(frozen=True, slots=True)
class SuspectFork:
    """Peers hold another chain: the round decided a block that does not extend this node's
    tip, or producers of the round build on another H(B_{r-1}). Compare chains with the
    peers (the fork choice, PROTOCOL §6); nothing is committed meanwhile."""

    round: int
    block_hash: bytes
    """The decided block of another chain, or our H(B_{r-1}) they do not build on."""
    why: str = "the round decided a block of another chain"
    """What raised the suspicion, for the log: that, `PAST_MU` or `OTHER_PARENT`."""


PAST_MU = "past step mu without a decision"
OTHER_PARENT = "a producer of the round builds on another block"


@dataclass(frozen=True, slots=True)
class Finalized:
    """Block `certificate.block_hash` of `certificate.round`, which this node committed, is
    final (PROTOCOL §6): final votes of weight > t_f. It is never rolled back."""

    certificate: FinalCertificate


@dataclass(frozen=True, slots=True)
class Halted:
    """The node must stop consensus: a valid certificate conflicts with a final block, which
    no adversary within the declared fraction `f` can make (PROTOCOL §6). Report it loudly;
    `evidence` is what proves it."""

    reason: str
    evidence: tuple[object, ...] = ()


@dataclass(frozen=True, slots=True)
class Disconnect:
    """`message` is one no honest peer sends (`reason.malicious`): charge the peer it came
    from (its score; past the threshold it is disconnected and its address banned,
    docs/protocol.md §12). The core does not know peers; the caller does."""

    message: ConsensusMessage
    reason: DropReason


Action = (
    Send
    | Relay
    | SetTimer
    | ValidateBlock
    | FetchBlock
    | Sync
    | Commit
    | ForkEvidence
    | SuspectFork
    | Finalized
    | Halted
    | Disconnect
)
