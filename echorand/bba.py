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
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import IntEnum

from echorand.params import HASH_SIZE
from echorand.tally import EMPTY_VALUE, Tally, Value


class StepKind(IntEnum):
    """`c = (s - 5) mod 3` of a BBA step `s >= 5`."""

    COIN_FIXED_TO_0 = 0
    COIN_FIXED_TO_1 = 1
    COIN_FLIPPED = 2


@dataclass(frozen=True, slots=True)
class Vote:
    """A BBA vote: the bit and the value (`b = 1` votes are counted with the empty value)."""

    b: int
    value: Value

    @property
    def certified_value(self) -> Value:
        """The value the vote's `cert_sig` signs: the empty value when `b = 1`."""
        return EMPTY_VALUE if self.b == 1 else self.value


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
        if not self.tally.add(signer, weight, (vote.b, vote.certified_value)):
            return False
        self.cert_sigs[signer] = cert_sig
        return True

    def put(
        self, principal: int, weight: int, vote: Vote, cert_sig: bytes, signer: int, mode: int
    ) -> None:
        """Count `principal`'s seats for `vote`, replacing what they were counted for:
        its own vote (`signer == principal`, mode 0) or a substitute (§16)."""
        self.tally.replace(principal, weight, (vote.b, vote.certified_value))
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
        passed = self.tally.above(t_h, exclude=(1, EMPTY_VALUE))
        return passed[1] if passed is not None else None

    def w1(self, t_h: int) -> bool:
        """Whether `W1 > t_h`."""
        return self.tally.weight((1, EMPTY_VALUE)) > t_h

    def votes_for(self, vote: Vote) -> list[tuple[int, bytes]]:
        """(signer, cert_sig) of every principal counted for `vote` by its own vote."""
        key = (vote.b, vote.certified_value)
        return sorted(
            (s, self.cert_sigs[s]) for s in self.tally.signers(key) if s not in self.substitutes
        )

    def substitutes_for(self, vote: Vote) -> list[tuple[int, int, int, bytes]]:
        """(principal, signer, mode, cert_sig) of every substitute counted for `vote`."""
        key = (vote.b, vote.certified_value)
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
    if kind is StepKind.COIN_FIXED_TO_1 and votes.w1(t_h):
        return Vote(1, EMPTY_VALUE)
    return None


def run_step(
    step: int,
    previous: StepVotes,
    t_h: int,
    own_value: Value,
    coin_bit: int,
    past_mu: bool,
    timed_out: bool,
) -> Outcome | None:
    """What BBA step `step` does given the votes of step `step - 1`, or None to keep waiting.

    `own_value` is the value this node carries (graded consensus's, or the
    last one it adopted); `coin_bit` is `coin(r, step)`.
    """
    kind = step_kind(step)
    w0 = previous.w0(t_h)
    w1 = previous.w1(t_h)
    if kind is StepKind.COIN_FIXED_TO_0:
        if w0 is not None:
            return Outcome(Vote(0, w0), decided=True)
        if w1:
            return Outcome(Vote(1, own_value), decided=False)
        default = 0
    elif kind is StepKind.COIN_FIXED_TO_1:
        if w1:
            return Outcome(Vote(1, EMPTY_VALUE), decided=True)
        if w0 is not None:
            return Outcome(Vote(0, w0), decided=False)
        default = 1
    else:
        if w0 is not None:
            return Outcome(Vote(0, w0), decided=False)
        if w1:
            return Outcome(Vote(1, own_value), decided=False)
        default = 1 if past_mu else coin_bit
    if not timed_out:
        return None
    return Outcome(Vote(default, own_value), decided=False)
