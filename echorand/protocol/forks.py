"""Fork choice and recovery (PROTOCOL §6; docs/protocol.md §10).

Forks are possible only beyond the timing assumption (docs/protocol.md §10): a partition or an
adversarial scheduler can make two honest nodes certify different blocks of one round. Such
blocks are tentative — no block whose final votes passed `t_f` can ever be contradicted — and
the whitepaper's fork prioritization heals the fork once the nodes hear each other: a node
that meets a peer on another chain fetches that chain with its certificates from the last
final block on, and `plan` compares it with its own.

- Nothing below the node's last final block is ever rolled back: a chain that parts from ours
  there is kept out (`Choice.OURS`, `below_final`). A chain parted from ours before a final
  block can never reach that block's round (no certificate can contradict a final block), so
  its owner is the one to switch; its blocks prove nothing about the adversary.
- A chain that proves a final block after the fork point (a checked final certificate) wins:
  it is the chain every honest node reaches. Two final blocks on parted chains are the
  contradiction that halts (`Choice.HALT`): the adversary exceeded `f`.
- Otherwise the chains from the fork point are compared by `certificate.choose_chain`; the
  node keeps its own, or rolls its ledger back to the fork point and applies the other chain,
  each block with its certificate checked as sync checks it, never past the last final block.

Both executors (the node and the simulator) follow the plan the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from echorand.protocol.certificate import choose_chain
from echorand.wire.messages import Block, Certificate

CertifiedBlock = tuple[Block, Certificate]


class ChainView(Protocol):
    """The node's own chain as the fork choice reads it."""

    @property
    def tip(self) -> int: ...

    @property
    def final_round(self) -> int: ...

    def hash(self, round: int) -> bytes | None: ...

    def block(self, round: int) -> Block | None: ...

    def certificate(self, round: int) -> Certificate | None: ...


class Choice(Enum):
    OURS = "ours"
    """Our chain wins the fork choice: keep it (the peer will switch)."""
    THEIRS = "theirs"
    """Theirs wins: roll back to the fork point and apply it."""
    HALT = "halt"
    """Both chains hold a final block after they part: evidence the adversary exceeded f."""


@dataclass(frozen=True, slots=True)
class ForkPlan:
    """Where two chains part, and which one the fork choice keeps."""

    fork_round: int
    """The first round whose blocks differ."""
    choice: Choice
    ours: tuple[CertifiedBlock, ...]
    """Our blocks from `fork_round` to our tip, with their certificates."""
    theirs: tuple[CertifiedBlock, ...]
    """Their blocks from `fork_round` on."""
    below_final: bool = False
    """They part from us at or below our last final block: theirs is never followed."""

    @property
    def rollback_to(self) -> int:
        return self.fork_round - 1


class ForkError(ValueError):
    """Their chain cannot be compared with ours (it does not attach to it where it says)."""


def plan(
    ours: ChainView, theirs: Sequence[CertifiedBlock], their_final: int = 0
) -> ForkPlan | None:
    """Compare `theirs` — consecutive certified blocks from some round `a <= ours.tip + 1`
    whose first block extends our block `a - 1` — with our chain. None when they do not
    diverge (theirs is our chain, or extends it); a plan otherwise.

    `their_final`: the last round of `theirs` that the caller proved final by checking its
    final certificate against their chain (0: none proved). The caller checks `theirs`'s
    certificates before it follows them; `plan` reads only hashes and rounds.

    Raises `ForkError` when their first block does not extend our block of the round before.
    """
    if not theirs:
        return None
    first = theirs[0][0].round
    if first < 1 or first > ours.tip + 1:
        raise ForkError(f"their chain starts at round {first}; ours ends at {ours.tip}")
    if theirs[0][0].prev_hash != ours.hash(first - 1):
        raise ForkError(f"their block {first} does not extend our block {first - 1}")
    fork = None
    for block, _ in theirs:
        mine = ours.hash(block.round)
        if mine is None:
            return None  # theirs extends ours from here on: plain sync
        if mine != block.hash:
            fork = block.round
            break
    if fork is None:
        return None
    mine_from_fork = tuple(_own(ours, r) for r in range(fork, ours.tip + 1))
    theirs_from_fork = tuple(c for c in theirs if c[0].round >= fork)
    theirs_final = their_final >= fork
    if fork <= ours.final_round:
        choice = Choice.HALT if theirs_final else Choice.OURS
        return ForkPlan(fork, choice, mine_from_fork, theirs_from_fork, below_final=True)
    if theirs_final:
        choice = Choice.THEIRS
    else:
        winner = choose_chain([[b for b, _ in mine_from_fork], [b for b, _ in theirs_from_fork]])
        choice = Choice.OURS if winner == 0 else Choice.THEIRS
    return ForkPlan(fork, choice, mine_from_fork, theirs_from_fork)


def _own(ours: ChainView, round: int) -> CertifiedBlock:
    block, cert = ours.block(round), ours.certificate(round)
    assert block is not None and cert is not None, f"our block {round} is held"
    return block, cert
