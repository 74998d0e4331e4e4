"""Binary Byzantine agreement (steps 5, 6, ...) and its common coin (PROTOCOL §5).

Step `s >= 5` looks at the `bba_signature` votes of step `s - 1` (step 4's
are graded consensus's output). `W0(v)` is the weight voting `b = 0` with
value `v`, `W1` the weight voting `b = 1`. With `c = (s - 5) mod 3`:

- `c = 0` (coin fixed to 0): `W0(v) > t_h` decides `v`; else `W1 > t_h`
  gives `b = 1`; else (at the timer) `b = 0`.
- `c = 1` (coin fixed to 1): `W1 > t_h` decides the empty block; else
  `W0(v) > t_h` gives `b = 0` with `v`; else (at the timer) `b = 1`.
- `c = 2` (coin flipped): `W0(v) > t_h` gives `b = 0` with `v`; else
  `W1 > t_h` gives `b = 1`; else (at the timer) `b = coin(r, s)` — and
  after step `mu`, `b = 1`, so that an undecided round converges on the
  empty block (docs/protocol.md §8).

A step acts as soon as a decisive weight arrives, or when its timer fires.
A decision is made by the votes of one step alone, so the votes that made
it are the certificate; any node that sees such votes decides, whatever
step it is at itself.

Values (PROTOCOL §5, revision 2): `b = 0` always carries a block's value
and `b = 1` the round's empty value `(H(B_ε), 2^64 - 1)`. A node that takes
`b = 0` from `W0(v) > t_h` adopts `v`; where only a default or the coin
gives `b = 0` to a node whose value is empty, it votes `b = 1` (`vote`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import IntEnum

from echorand.protocol.tally import Tally, Value, is_empty
from echorand.wire.constants import HASH_SIZE
from echorand.wire.messages import Certificate


class StepKind(IntEnum):
    """`c = (s - 5) mod 3` of a BBA step `s >= 5`."""

    COIN_FIXED_TO_0 = 0
    COIN_FIXED_TO_1 = 1
    COIN_FLIPPED = 2


@dataclass(frozen=True, slots=True)
class Vote:
    """A BBA vote: the bit and the value its `cert_sig` signs (a block's value when `b = 0`,
    the round's empty value when `b = 1`)."""

    b: int
    value: Value


def vote(b: int, own_value: Value, empty: Value) -> Vote:
    """The vote for bit `b` of a node whose value is `own_value`: `b = 1`, or a `b = 0` that
    only a default or the coin gave to a node with an empty value, is a vote for the empty
    block (`empty`, the round's empty value); otherwise `b = 0` for `own_value`."""
    if b == 1 or is_empty(own_value):
        return Vote(1, empty)
    return Vote(0, own_value)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a BBA step does: vote `vote` in this step, or stop because it `decided`."""

    vote: Vote
    decided: bool


def step_kind(step: int) -> StepKind:
    if step < 5:
        raise ValueError(f"BBA steps are >= 5, got {step}")
    return StepKind((step - 5) % 3)


def coin(seed: bytes, round: int, step: int) -> int:
    """coin(r, s) = H(Q[r-1] || u64be(r) || u32be(s) || "coin")[31] & 1 (PROTOCOL §5)."""
    if len(seed) != HASH_SIZE:
        raise ValueError(f"seed must be {HASH_SIZE} bytes, got {len(seed)}")
    digest = hashlib.sha256(
        bytes(seed) + round.to_bytes(8, "big") + step.to_bytes(4, "big") + b"coin"
    ).digest()
    return digest[31] & 1


class StepVotes:
    """The `bba_signature` votes of one step: weights by (b, v), and each signer's cert_sig."""

    __slots__ = ("cert_sigs", "substitutes", "tally")

    def __init__(self) -> None:
        self.tally: Tally[tuple[int, Value]] = Tally()
        self.cert_sigs: dict[int, bytes] = {}
        self.substitutes: dict[int, tuple[int, int]] = {}
        """principal -> (signer, mode) for principals counted through a substitute."""

    def add(self, signer: int, weight: int, vote: Vote, cert_sig: bytes) -> bool:
        """Count a vote; False if this signer already voted in this step."""
        if not self.tally.add(signer, weight, (vote.b, vote.value)):
            return False
        self.cert_sigs[signer] = cert_sig
        return True

    def put(
        self, principal: int, weight: int, vote: Vote, cert_sig: bytes, signer: int, mode: int
    ) -> None:
        """Count `principal`'s seats for `vote`, replacing what they were counted for:
        its own vote (`signer == principal`, mode 0) or a substitute (§16)."""
        self.tally.replace(principal, weight, (vote.b, vote.value))
        self.cert_sigs[principal] = cert_sig
        if mode == 0:
            self.substitutes.pop(principal, None)
        else:
            self.substitutes[principal] = (signer, mode)

    def snapshot(self) -> StepVotes:
        """A copy: the votes as they were when a decision was made (a later own vote may
        override a substitute that the decision counted, §16)."""
        copy = StepVotes()
        copy.tally = self.tally.copy()
        copy.cert_sigs = dict(self.cert_sigs)
        copy.substitutes = dict(self.substitutes)
        return copy

    def w0(self, t_h: int) -> Value | None:
        """The value `v` with `W0(v) > t_h`, if any."""
        passed = self.tally.above(t_h, keep=lambda key: key[0] == 0)
        return passed[1] if passed is not None else None

    def w1(self, t_h: int) -> Value | None:
        """The empty value with `W1 > t_h`, if any (validation lets one empty value in: the
        round's)."""
        passed = self.tally.above(t_h, keep=lambda key: key[0] == 1)
        return passed[1] if passed is not None else None

    def votes_for(self, vote: Vote) -> list[tuple[int, bytes]]:
        """(signer, cert_sig) of every principal counted for `vote` by its own vote."""
        key = (vote.b, vote.value)
        return sorted(
            (s, self.cert_sigs[s]) for s in self.tally.signers(key) if s not in self.substitutes
        )

    def substitutes_for(self, vote: Vote) -> list[tuple[int, int, int, bytes]]:
        """(principal, signer, mode, cert_sig) of every substitute counted for `vote`."""
        key = (vote.b, vote.value)
        return sorted(
            (p, *self.substitutes[p], self.cert_sigs[p])
            for p in self.tally.signers(key)
            if p in self.substitutes
        )


def deciding_vote(votes_step: int, votes: StepVotes, t_h: int) -> Vote | None:
    """The decision that the votes of step `votes_step` make, if they make one.

    Step `s` decides from the votes of step `s - 1`: a `c = 0` step decides
    `v` on `W0(v) > t_h`, a `c = 1` step the empty block on `W1 > t_h`.
    """
    if votes_step < 4:
        return None
    kind = step_kind(votes_step + 1)
    if kind is StepKind.COIN_FIXED_TO_0:
        value = votes.w0(t_h)
        return Vote(0, value) if value is not None else None
    if kind is StepKind.COIN_FIXED_TO_1:
        empty = votes.w1(t_h)
        return Vote(1, empty) if empty is not None else None
    return None


def run_step(
    step: int,
    previous: StepVotes,
    t_h: int,
    own_value: Value,
    empty: Value,
    coin_bit: int,
    past_mu: bool,
    timed_out: bool,
) -> Outcome | None:
    """What BBA step `step` does given the votes of step `step - 1`, or None to keep waiting.

    `own_value` is the value this node carries (graded consensus's, or the
    last one it adopted); `empty` the round's empty value; `coin_bit` is
    `coin(r, step)`. A `b = 0` from a passed `W0(v)` carries `v` (the caller
    adopts it); a default or coin `b = 0` carries `own_value`, or becomes
    `b = 1` when that is empty (`vote`).
    """
    kind = step_kind(step)
    w0 = previous.w0(t_h)
    w1 = previous.w1(t_h)
    if kind is StepKind.COIN_FIXED_TO_0:
        if w0 is not None:
            return Outcome(Vote(0, w0), decided=True)
        if w1 is not None:
            return Outcome(Vote(1, empty), decided=False)
        default = 0
    elif kind is StepKind.COIN_FIXED_TO_1:
        if w1 is not None:
            return Outcome(Vote(1, w1), decided=True)
        if w0 is not None:
            return Outcome(Vote(0, w0), decided=False)
        default = 1
    else:
        if w0 is not None:
            return Outcome(Vote(0, w0), decided=False)
        if w1 is not None:
            return Outcome(Vote(1, empty), decided=False)
        default = 1 if past_mu else coin_bit
    if not timed_out:
        return None
    return Outcome(vote(default, own_value, empty), decided=False)


def build_certificate(round: int, step: int, vote: Vote, votes: StepVotes) -> Certificate:
    """CERT_r from the votes of the deciding step (with its substitutes, §16)."""
    block_hash, leader = vote.value
    subs = sorted(votes.substitutes_for(vote))
    return Certificate(round, step, vote.b, block_hash, leader, votes.votes_for(vote), subs)
