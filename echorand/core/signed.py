"""What this node has signed, so that it never signs two different messages for one round and
step (PROTOCOL §6), crash or not — Tendermint's last-sign state, for every account it runs.

A record is keyed by the slot it fills: `(round, step, message type, sender, principal)`
(the principal is the sender for its own messages, the account whose seats a substitute
fills otherwise; step 1's two messages, `gc_block` and `gc_signature`, differ by type). It
holds the message and the H(B_{r-1}) it was signed on.

The core consults the log before it signs: a slot already filled on this H(B_{r-1}) is filled
again with the same message (re-sent, never re-signed); a slot filled on another fork (the
node has rolled back since) is left empty: the node abstains there. The executor makes each
record durable before the message leaves the node (`Send.prev_hash` is what it stores beside
the message), and hands the stored records back to the core at start.

Stored bytes: key `u64be(round) || u32be(step) || u8(type) || u64be(sender) ||
u64be(principal)` (so that records sort by round), value `prev_hash 32 || message`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from echorand.wire.constants import HASH_SIZE
from echorand.wire.messages import (
    CONSENSUS_TYPES,
    BbaSubstitute,
    ConsensusMessage,
    GcSubstitute,
    decode,
)

Slot = tuple[int, int, int, int, int]
"""(round, step, message type, sender, principal)."""

SLOT_SIZE = 8 + 4 + 1 + 8 + 8


def slot(msg: ConsensusMessage) -> Slot:
    """The slot `msg` fills."""
    principal = msg.principal if isinstance(msg, GcSubstitute | BbaSubstitute) else msg.sender
    return (msg.round, msg.step, msg.CODE, msg.sender, principal)


def slot_key(s: Slot) -> bytes:
    """The stored key of a slot (records sort by round, then step)."""
    round, step, code, sender, principal = s
    return (
        round.to_bytes(8, "big")
        + step.to_bytes(4, "big")
        + code.to_bytes(1, "big")
        + sender.to_bytes(8, "big")
        + principal.to_bytes(8, "big")
    )


def round_key(round: int) -> bytes:
    """The smallest stored key of `round`: records of earlier rounds sort before it."""
    return round.to_bytes(8, "big")


@dataclass(frozen=True, slots=True)
class Signed:
    """A message this node signed, and the H(B_{r-1}) it was signed on."""

    prev_hash: bytes
    message: ConsensusMessage

    def encode(self) -> bytes:
        return self.prev_hash + self.message.encode()

    @classmethod
    def decode(cls, raw: bytes) -> Signed:
        """The stored value back (`DecodeError`/`ValueError` on anything else)."""
        if len(raw) <= HASH_SIZE:
            raise ValueError(f"signed record: {len(raw)} bytes, too short")
        message = decode(raw[HASH_SIZE:])
        if not isinstance(message, CONSENSUS_TYPES):
            raise ValueError(f"signed record: a {type(message).__name__} is not a vote")
        return cls(bytes(raw[:HASH_SIZE]), message)  # type: ignore[arg-type]


class SignedLog:
    """The slots this node filled, in memory (the executor keeps them durable)."""

    __slots__ = ("_records",)

    def __init__(self, records: Iterable[Signed] = ()) -> None:
        self._records: dict[Slot, Signed] = {}
        for record in records:
            self._records[slot(record.message)] = record

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self) -> Iterator[Signed]:
        return iter(self._records.values())

    def get(self, s: Slot) -> Signed | None:
        return self._records.get(s)

    def add(self, prev_hash: bytes, msg: ConsensusMessage) -> None:
        """Record `msg`, signed on `prev_hash`; a filled slot is never overwritten."""
        s = slot(msg)
        known = self._records.get(s)
        if known is not None and known.message != msg:
            raise RuntimeError(f"signing twice for slot {s}: the node would equivocate")
        self._records[s] = Signed(prev_hash, msg)

    def prune(self, below: int) -> None:
        """Forget the slots of rounds before `below` (their records stay durable)."""
        self._records = {s: r for s, r in self._records.items() if s[0] >= below}
