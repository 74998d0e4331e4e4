"""Graded consensus: steps 2, 3 and 4 of a round (whitepaper, "Graded Consensus").

- Step 2 (voting): at 2λ the leader `l` is the producer of best priority
  heard so far; a verifier proposes `v = {H(B_l), l}` once it holds `B_l`
  and its payload is valid, or `{∅, ∅}` at λ+Λ. (`{∅, ∅}` is the round's
  empty value, `(H(B_ε), 2^64 - 1)`: PROTOCOL §5, revision 2.)
- Step 3 (vote counting): a value with step-2 weight > t_h is proposed
  again as soon as it passes; `{∅, ∅}` at 3λ+Λ.
- Step 4 (primary evaluation): a value with step-3 weight > t_h gives
  `b = 0` with it (`b = 1` for `{∅, ∅}`); at the timer (2λ after step 3),
  `b = 1` with the value that has step-3 weight > t_h / 2, else `{∅, ∅}`.

This module only counts and decides; `echorand.core.round` times the steps and
signs the messages. Every input here has been validated already.
"""

from __future__ import annotations

from dataclasses import dataclass

from echorand.protocol.tally import Tally, Value, is_empty
from echorand.wire.messages import Block


@dataclass(slots=True)
class Proposal:
    """What a producer proposed this round (the whitepaper's `ctx[id]`)."""

    producer: int
    priority: int
    block_hash: bytes
    """HB: the first block hash heard from this producer; later conflicting ones are dropped."""
    block: Block | None = None
    """B: the block itself, once its gc_block arrived."""
    valid: bool | None = None
    """Whether PAY_r passed the ledger's checks (None: not known yet)."""

    @property
    def value(self) -> Value:
        return (self.block_hash, self.producer)


@dataclass(frozen=True, slots=True)
class Graded:
    """The output of graded consensus: the bit `b` and value `v` BBA starts from."""

    b: int
    value: Value


class GradedConsensus:
    """The counters of steps 2-4 of one round."""

    __slots__ = ("empty", "leader", "proposals", "step2", "step3", "t_h")

    def __init__(self, t_h: int, empty: Value) -> None:
        self.t_h = t_h
        self.empty = empty
        """{∅, ∅} of this round."""
        self.proposals: dict[int, Proposal] = {}
        self.leader: int | None = None
        self.step2: Tally[Value] = Tally()
        self.step3: Tally[Value] = Tally()

    # --- producers (step 1 messages) ---------------------------------------

    def conflicts(self, value: Value) -> bool:
        """Whether `value` names a producer whose block hash we know to be different."""
        if is_empty(value):
            return False
        known = self.proposals.get(value[1])
        return known is not None and known.block_hash != value[0]

    def add_proposal(self, producer: int, priority: int, block_hash: bytes) -> bool:
        """Record a producer's block hash (gc_signature or gc_block); False on a conflict."""
        known = self.proposals.get(producer)
        if known is None:
            self.proposals[producer] = Proposal(producer, priority, block_hash)
            return True
        return known.block_hash == block_hash

    def add_block(self, producer: int, priority: int, block: Block) -> bool:
        """Record a producer's block; False if it conflicts with the hash heard before."""
        if not self.add_proposal(producer, priority, block.hash):
            return False
        proposal = self.proposals[producer]
        if proposal.block is None:
            proposal.block = block
        return True

    def set_valid(self, block_hash: bytes, ok: bool) -> None:
        for proposal in self.proposals.values():
            if proposal.block_hash == block_hash:
                proposal.valid = ok

    def block(self, block_hash: bytes) -> Block | None:
        """A block with this hash, if one arrived."""
        for proposal in self.proposals.values():
            if proposal.block is not None and proposal.block_hash == block_hash:
                return proposal.block
        return None

    def best(self) -> Proposal | None:
        """The producer of best (lowest) priority whose block is not known to be invalid."""
        candidates = [p for p in self.proposals.values() if p.valid is not False]
        return min(candidates, key=lambda p: p.priority) if candidates else None

    # --- step 2 --------------------------------------------------------------

    def choose_leader(self) -> None:
        """At 2λ: fix `l`. If nobody was heard yet, the first producer heard later is `l`."""
        best = self.best()
        self.leader = best.producer if best is not None else None

    def step2_value(self, timed_out: bool) -> Value | None:
        """Step 2's value, or None while waiting for the leader's block."""
        if self.leader is None:
            self.choose_leader()
        proposal = self.proposals.get(self.leader) if self.leader is not None else None
        if proposal is not None and proposal.block is not None and proposal.valid is True:
            return proposal.value
        if proposal is not None and proposal.valid is False:
            return self.empty
        return self.empty if timed_out else None

    # --- step 3 --------------------------------------------------------------

    def step3_value(self, timed_out: bool) -> Value | None:
        """Step 3's value: the step-2 value of weight > t_h, else {∅, ∅} at the timer."""
        passed = self.step2.above(self.t_h)
        if passed is not None:
            return passed
        return self.empty if timed_out else None

    # --- step 4 --------------------------------------------------------------

    def step4_value(self, timed_out: bool) -> Graded | None:
        """Step 4's (b, v), or None while no value has passed and the timer has not fired."""
        passed = self.step3.above(self.t_h)
        if passed is not None:
            return Graded(1, passed) if is_empty(passed) else Graded(0, passed)
        if not timed_out:
            return None
        half = self.step3.above(self.t_h // 2, keep=lambda value: not is_empty(value))
        return Graded(1, half if half is not None else self.empty)
