"""Byzantine behaviours: how a dishonest node changes what it sends.

A Byzantine node runs the real core (so it knows the round as well as
anyone) and then rewrites its own outgoing messages:

- `silent`: sends and relays nothing.
- `equivocate-block`: as a producer, sends one block to half its peers and
  another (same round, another payload) to the other half.
- `equivocate-vote`: in every step, one value to half its peers and another
  to the other half.
- `random-vote`: every vote carries a random bit and a random value among
  those it has heard of (always well-formed: `b = 1` with the round's empty
  value, `b = 0` with a block's value, PROTOCOL §5).
- `late`: sends everything, 3λ late.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from echorand.protocol.delegation import sign_bba_substitute, sign_gc_substitute
from echorand.protocol.signing import (
    NO_SIGNATURE,
    Signer,
    sign_gc_block,
    sign_gc_signature,
    sign_proposal,
    sign_vote,
)
from echorand.protocol.tally import Value
from echorand.wire.messages import (
    BbaSignature,
    BbaSubstitute,
    Block,
    ConsensusMessage,
    GcBlock,
    GcProposal,
    GcSignature,
    GcSubstitute,
    Transaction,
)

if TYPE_CHECKING:
    from echorand.sim.adversary import SplitDecision

Targets = tuple[int, ...] | None
"""Peers to send to (None: all of them)."""

Outgoing = list[tuple[Targets, ConsensusMessage, int]]
"""What to send: (peers, message, extra delay in ms)."""

BEHAVIOURS = ("honest", "silent", "equivocate-block", "equivocate-vote", "random-vote", "late")


@dataclass(frozen=True, slots=True)
class Known:
    """What the node knows of its current round when it sends: the values of the blocks it
    heard of, and the round's empty value."""

    values: tuple[Value, ...]
    empty: Value


class Behaviour:
    """Honest: send every message to every peer, relay what the core says to relay."""

    name = "honest"
    relays = True

    def outgoing(self, msg: ConsensusMessage, peers: list[int], known: Known) -> Outgoing:
        return [(None, msg, 0)]


class Silent(Behaviour):
    name = "silent"
    relays = False

    def outgoing(self, msg: ConsensusMessage, peers: list[int], known: Known) -> Outgoing:
        return []


class Late(Behaviour):
    name = "late"

    def __init__(self, delay_ms: int) -> None:
        self.delay_ms = delay_ms

    def outgoing(self, msg: ConsensusMessage, peers: list[int], known: Known) -> Outgoing:
        return [(None, msg, self.delay_ms)]


class _Signing(Behaviour):
    def __init__(self, keys: Mapping[int, Signer], rng: random.Random, chain: bytes) -> None:
        self.keys = keys
        self.rng = rng
        self.chain = chain

    @staticmethod
    def halves(peers: list[int]) -> tuple[tuple[int, ...], tuple[int, ...]]:
        return tuple(peers[0::2]), tuple(peers[1::2])


class EquivocateBlock(_Signing):
    name = "equivocate-block"

    def __init__(self, keys: Mapping[int, Signer], rng: random.Random, chain: bytes) -> None:
        super().__init__(keys, rng, chain)
        self._other: dict[int, Block] = {}

    def outgoing(self, msg: ConsensusMessage, peers: list[int], known: Known) -> Outgoing:
        first, second = self.halves(peers)
        key = self.keys.get(msg.sender)
        chain = self.chain
        if isinstance(msg, GcBlock) and key is not None:
            other = self._other_block(key, msg.sender, msg.block)
            return [(first, msg, 0), (second, sign_gc_block(key, chain, msg.sender, other), 0)]
        if isinstance(msg, GcSignature) and key is not None and msg.round in self._other:
            other_block = self._other[msg.round]
            other = sign_gc_signature(key, chain, msg.sender, other_block)
            return [(first, msg, 0), (second, other, 0)]
        return [(None, msg, 0)]

    def _other_block(self, key: Signer, producer: int, block: Block) -> Block:
        """The same round's block with another payload: a signed zero self-transfer, and the
        same carried CERT_{r-1} (so that the second block is valid too)."""
        pk, chain = key.public_key, self.chain
        draft = Transaction(0, pk, pk, 0, 0, block.round, NO_SIGNATURE)
        tx = Transaction(0, pk, pk, 0, 0, block.round, key.sign(draft.signing_bytes(chain)))
        fields = (block.round, block.prev_hash, producer, block.seed_sig, (tx,))
        other = Block(*fields, NO_SIGNATURE, block.prev_cert)
        other = Block(*fields, key.sign(other.signing_bytes(chain)), block.prev_cert)
        self._other[block.round] = other
        return other


def _flipped(b: int, value: Value, known: Known) -> tuple[int, Value] | None:
    """The other bit with a value it may carry: `b = 1` with the empty value, `b = 0` with a
    block's value heard of (None when there is none)."""
    if b == 0:
        return 1, known.empty
    return (0, known.values[0]) if known.values else None


class EquivocateVote(_Signing):
    name = "equivocate-vote"

    def outgoing(self, msg: ConsensusMessage, peers: list[int], known: Known) -> Outgoing:
        first, second = self.halves(peers)
        key = self.keys.get(msg.sender)
        chain = self.chain
        if key is None:
            return [(None, msg, 0)]
        if isinstance(msg, GcProposal | GcSubstitute):
            choices = (*known.values, known.empty)
            other_value = next((v for v in choices if v != msg.value), msg.value)
            if other_value == msg.value:
                return [(None, msg, 0)]
            if isinstance(msg, GcProposal):
                other: ConsensusMessage = sign_proposal(
                    key, chain, msg.round, msg.step, msg.sender, other_value
                )
            else:
                head = (msg.round, msg.step, msg.sender, msg.principal, msg.mode)
                other = sign_gc_substitute(key, chain, *head, other_value)
            return [(first, msg, 0), (second, other, 0)]
        if isinstance(msg, BbaSignature | BbaSubstitute):
            flipped = _flipped(msg.b, msg.value, known)
            if flipped is None:
                return [(None, msg, 0)]
            if isinstance(msg, BbaSignature):
                other = sign_vote(key, chain, msg.round, msg.step, msg.sender, *flipped)
            else:
                head = (msg.round, msg.step, msg.sender, msg.principal, msg.mode)
                other = sign_bba_substitute(key, chain, *head, *flipped)
            return [(first, msg, 0), (second, other, 0)]
        return [(None, msg, 0)]


class RandomVote(_Signing):
    name = "random-vote"

    def outgoing(self, msg: ConsensusMessage, peers: list[int], known: Known) -> Outgoing:
        key = self.keys.get(msg.sender)
        if key is None:
            return [(None, msg, 0)]
        chain = self.chain
        values = [known.empty, *known.values]
        head = (msg.round, msg.step, msg.sender)
        if isinstance(msg, GcProposal):
            value = self.rng.choice(values)
            return [(None, sign_proposal(key, chain, *head, value), 0)]
        if isinstance(msg, GcSubstitute):
            value = self.rng.choice(values)
            out = sign_gc_substitute(key, chain, *head, msg.principal, msg.mode, value)
            return [(None, out, 0)]
        if isinstance(msg, BbaSignature | BbaSubstitute):
            value = self.rng.choice(values)
            b = 1 if value == known.empty else self.rng.randrange(2)
            if b == 1:
                value = known.empty
            if isinstance(msg, BbaSignature):
                return [(None, sign_vote(key, chain, *head, b, value), 0)]
            out = sign_bba_substitute(key, chain, *head, msg.principal, msg.mode, b, value)
            return [(None, out, 0)]
        return [(None, msg, 0)]


class Split(_Signing):
    """The Byzantine nodes of `echorand.sim.adversary.SplitDecision`: honest but in its round,
    where their step-4 votes go to the deciders only, their final votes nowhere, and their
    later votes say `b = 1` (the empty block) to everyone."""

    name = "split"

    def __init__(
        self, keys: Mapping[int, Signer], rng: random.Random, chain: bytes, scenario: SplitDecision
    ) -> None:
        super().__init__(keys, rng, chain)
        self.scenario = scenario

    def outgoing(self, msg: ConsensusMessage, peers: list[int], known: Known) -> Outgoing:
        where = self.scenario.byzantine_targets(msg)
        if where is None:
            return [(None, msg, 0)]
        if where != "empty":
            return [(tuple(t for t in where if t in peers), msg, 0)]
        key = self.keys.get(msg.sender)
        if key is None or not isinstance(msg, BbaSignature | BbaSubstitute):
            return [(None, msg, 0)]
        if isinstance(msg, BbaSignature):
            out: ConsensusMessage = sign_vote(
                key, self.chain, msg.round, msg.step, msg.sender, 1, known.empty
            )
        else:
            head = (msg.round, msg.step, msg.sender, msg.principal, msg.mode)
            out = sign_bba_substitute(key, self.chain, *head, 1, known.empty)
        return [(None, out, 0)]


def make_behaviour(
    name: str, keys: Mapping[int, Signer], rng: random.Random, lam_ms: int, chain: bytes
) -> Behaviour:
    """The behaviour called `name` (one of `BEHAVIOURS`); `chain` is the genesis hash its
    forged messages are signed for."""
    if name == "honest":
        return Behaviour()
    if name == "silent":
        return Silent()
    if name == "late":
        return Late(3 * lam_ms)
    if name == "equivocate-block":
        return EquivocateBlock(keys, rng, chain)
    if name == "equivocate-vote":
        return EquivocateVote(keys, rng, chain)
    if name == "random-vote":
        return RandomVote(keys, rng, chain)
    raise ValueError(f"behaviour must be one of {', '.join(BEHAVIOURS)}, got {name!r}")
