"""Byzantine behaviours: how a dishonest node changes what it sends.

A Byzantine node runs the real core (so it knows the round as well as
anyone) and then rewrites its own outgoing messages:

- `silent`: sends and relays nothing.
- `equivocate-block`: as a producer, sends one block to half its peers and
  another (same round, another payload) to the other half.
- `equivocate-vote`: in every step, one value to half its peers and another
  to the other half.
- `random-vote`: every vote carries a random bit and a random value among
  those it has heard of.
- `late`: sends everything, 3λ late.
"""

from __future__ import annotations

import random
from collections.abc import Mapping

from echorand.delegation import sign_bba_substitute, sign_gc_substitute
from echorand.messages import (
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
from echorand.signing import (
    NO_SIGNATURE,
    Signer,
    sign_gc_block,
    sign_gc_signature,
    sign_proposal,
    sign_vote,
)
from echorand.tally import EMPTY_VALUE, Value

Targets = tuple[int, ...] | None
"""Peers to send to (None: all of them)."""

Outgoing = list[tuple[Targets, ConsensusMessage, int]]
"""What to send: (peers, message, extra delay in ms)."""

BEHAVIOURS = ("honest", "silent", "equivocate-block", "equivocate-vote", "random-vote", "late")


class Behaviour:
    """Honest: send every message to every peer, relay what the core says to relay."""

    name = "honest"
    relays = True

    def outgoing(self, msg: ConsensusMessage, peers: list[int], known: list[Value]) -> Outgoing:
        return [(None, msg, 0)]


class Silent(Behaviour):
    name = "silent"
    relays = False

    def outgoing(self, msg: ConsensusMessage, peers: list[int], known: list[Value]) -> Outgoing:
        return []


class Late(Behaviour):
    name = "late"

    def __init__(self, delay_ms: int) -> None:
        self.delay_ms = delay_ms

    def outgoing(self, msg: ConsensusMessage, peers: list[int], known: list[Value]) -> Outgoing:
        return [(None, msg, self.delay_ms)]


class _Signing(Behaviour):
    def __init__(self, keys: Mapping[int, Signer], rng: random.Random) -> None:
        self.keys = keys
        self.rng = rng

    @staticmethod
    def halves(peers: list[int]) -> tuple[tuple[int, ...], tuple[int, ...]]:
        return tuple(peers[0::2]), tuple(peers[1::2])


class EquivocateBlock(_Signing):
    name = "equivocate-block"

    def __init__(self, keys: Mapping[int, Signer], rng: random.Random) -> None:
        super().__init__(keys, rng)
        self._other: dict[int, Block] = {}

    def outgoing(self, msg: ConsensusMessage, peers: list[int], known: list[Value]) -> Outgoing:
        first, second = self.halves(peers)
        key = self.keys.get(msg.sender)
        if isinstance(msg, GcBlock) and key is not None:
            other = self._other_block(key, msg.sender, msg.block)
            return [(first, msg, 0), (second, sign_gc_block(key, msg.sender, other), 0)]
        if isinstance(msg, GcSignature) and key is not None and msg.round in self._other:
            other = self._other[msg.round]
            return [(first, msg, 0), (second, sign_gc_signature(key, msg.sender, other), 0)]
        return [(None, msg, 0)]

    def _other_block(self, key: Signer, producer: int, block: Block) -> Block:
        """The same round's block with another payload: a signed zero self-transfer, and the
        same carried CERT_{r-1} (so that the second block is valid too)."""
        pk = key.public_key
        draft = Transaction(0, pk, pk, 0, 0, block.round, NO_SIGNATURE)
        tx = Transaction(0, pk, pk, 0, 0, block.round, key.sign(draft.signing_bytes()))
        fields = (block.round, block.prev_hash, producer, block.seed_sig, (tx,))
        other = Block(*fields, NO_SIGNATURE, block.prev_cert)
        other = Block(*fields, key.sign(other.signing_bytes()), block.prev_cert)
        self._other[block.round] = other
        return other


class EquivocateVote(_Signing):
    name = "equivocate-vote"

    def outgoing(self, msg: ConsensusMessage, peers: list[int], known: list[Value]) -> Outgoing:
        first, second = self.halves(peers)
        key = self.keys.get(msg.sender)
        if isinstance(msg, GcProposal) and key is not None:
            other_value = next((v for v in known if v != msg.value), EMPTY_VALUE)
            if other_value == msg.value:
                return [(None, msg, 0)]
            other = sign_proposal(key, msg.round, msg.step, msg.sender, other_value)
            return [(first, msg, 0), (second, other, 0)]
        if isinstance(msg, BbaSignature) and key is not None:
            other = sign_vote(key, msg.round, msg.step, msg.sender, 1 - msg.b, msg.value)
            return [(first, msg, 0), (second, other, 0)]
        if isinstance(msg, BbaSubstitute) and key is not None:
            head = (msg.round, msg.step, msg.sender, msg.principal, msg.mode)
            other = sign_bba_substitute(key, *head, 1 - msg.b, msg.value)
            return [(first, msg, 0), (second, other, 0)]
        if isinstance(msg, GcSubstitute) and key is not None:
            other_value = next((v for v in known if v != msg.value), EMPTY_VALUE)
            if other_value != msg.value:
                head = (msg.round, msg.step, msg.sender, msg.principal, msg.mode)
                other = sign_gc_substitute(key, *head, other_value)
                return [(first, msg, 0), (second, other, 0)]
        return [(None, msg, 0)]


class RandomVote(_Signing):
    name = "random-vote"

    def outgoing(self, msg: ConsensusMessage, peers: list[int], known: list[Value]) -> Outgoing:
        key = self.keys.get(msg.sender)
        if key is None:
            return [(None, msg, 0)]
        values = [EMPTY_VALUE, *known]
        if isinstance(msg, GcProposal):
            value = self.rng.choice(values)
            return [(None, sign_proposal(key, msg.round, msg.step, msg.sender, value), 0)]
        if isinstance(msg, BbaSignature):
            b = self.rng.randrange(2)
            value = self.rng.choice(values)
            return [(None, sign_vote(key, msg.round, msg.step, msg.sender, b, value), 0)]
        head = (msg.round, msg.step, msg.sender)
        if isinstance(msg, GcSubstitute):
            value = self.rng.choice(values)
            out = sign_gc_substitute(key, *head, msg.principal, msg.mode, value)
            return [(None, out, 0)]
        if isinstance(msg, BbaSubstitute):
            b = self.rng.randrange(2)
            value = self.rng.choice(values)
            out = sign_bba_substitute(key, *head, msg.principal, msg.mode, b, value)
            return [(None, out, 0)]
        return [(None, msg, 0)]


def make_behaviour(
    name: str, keys: Mapping[int, Signer], rng: random.Random, lam_ms: int
) -> Behaviour:
    """The behaviour called `name` (one of `BEHAVIOURS`)."""
    if name == "honest":
        return Behaviour()
    if name == "silent":
        return Silent()
    if name == "late":
        return Late(3 * lam_ms)
    if name == "equivocate-block":
        return EquivocateBlock(keys, rng)
    if name == "equivocate-vote":
        return EquivocateVote(keys, rng)
    if name == "random-vote":
        return RandomVote(keys, rng)
    raise ValueError(f"behaviour must be one of {', '.join(BEHAVIOURS)}, got {name!r}")
