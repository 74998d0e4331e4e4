"""Gossip: each message delivered once, relayed by the consensus core's rule (docs/protocol.md §12).

A gossip frame (a consensus message or a `tx_batch`) is known by the BLAKE3 digest of its
bytes: the encoding is canonical, so equal messages have equal frames. `Seen` keeps the
digests of the frames already delivered in two rotating generations, so its memory is
bounded. What the node has verified is forwarded when the core's relay decision says so
(`core.validate.should_relay`, carried out by the node's host: the whitepaper's "Messages
Distribution via Gossip"). `Held` keeps the messages of the next rounds until the node
gets there, bounded in bytes per peer and in all.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import TYPE_CHECKING

from blake3 import blake3

from echorand.wire.messages import (
    CONSENSUS_TYPES,
    Message,
    TxBatch,
    digest,
)

if TYPE_CHECKING:
    from echorand.net.peer import Peer

GOSSIP_CODES = frozenset({*(t.CODE for t in CONSENSUS_TYPES), TxBatch.CODE})
"""Type bytes of the messages that are gossiped (and de-duplicated): consensus (the
substitutes of §16 and final votes included) and tx_batch."""

TX_BATCH_CODE = TxBatch.CODE
"""The type byte of `tx_batch`, the low-priority gossip shed first under backpressure."""

DEFAULT_SEEN = 1 << 17
"""Digests remembered by default (about 13 MB): several rounds of a 1000-seat committee."""


_first_byte = itemgetter(0)


class Seen:
    """Digests of delivered gossip frames, at most `capacity` of them.

    Two generations: digests go into the newer one; when it holds `capacity / 2`, it
    becomes the older one and the previous older one is forgotten. A digest is
    remembered for at least `capacity / 2` later insertions.
    """

    __slots__ = ("_half", "_new", "_old")

    def __init__(self, capacity: int = DEFAULT_SEEN) -> None:
        if capacity < 2:
            raise ValueError(f"seen capacity must be at least 2, got {capacity}")
        self._half = capacity // 2
        self._new: set[bytes] = set()
        self._old: set[bytes] = set()

    def __contains__(self, key: object) -> bool:
        return key in self._new or key in self._old

    def __len__(self) -> int:
        return len(self._new) + len(self._old)

    def add(self, key: bytes) -> None:
        """Remember one digest."""
        self._new.add(key)
        if len(self._new) >= self._half:
            self._old, self._new = self._new, set()

    def add_many(self, keys: Iterable[bytes]) -> None:
        """Remember digests (the newer generation may pass `capacity / 2` by one batch)."""
        self._new.update(keys)
        if len(self._new) >= self._half:
            self._old, self._new = self._new, set()

    def add_frames(self, frames: Iterable[bytes]) -> None:
        """Remember the gossip frames among `frames` (others are never de-duplicated)."""
        for f in frames:
            if f[0] in GOSSIP_CODES:
                self.add(digest(f))

    def fresh(self, frames: Sequence[bytes]) -> tuple[list[bytes], list[bytes | None], int]:
        """The frames not seen before, their digests (None when not gossip), and duplicates.

        Nothing is remembered here: the caller adds the digests of the frames it delivers
        (a frame that turns out malformed must not hide a later good copy). A frame
        repeated within `frames` is kept once.
        """
        if not set(map(_first_byte, frames)) <= GOSSIP_CODES:
            return self._fresh_mixed(frames)
        # All gossip (the usual read): only the hashing is a loop in Python.
        firsts = dict(zip([blake3(f).digest() for f in frames], frames, strict=True))
        for d in firsts.keys() & self._new | firsts.keys() & self._old:
            del firsts[d]
        return list(firsts.values()), list(firsts), len(frames) - len(firsts)

    def _fresh_mixed(self, frames: Sequence[bytes]) -> tuple[list[bytes], list[bytes | None], int]:
        out: list[bytes] = []
        keys: list[bytes | None] = []
        batch: set[bytes] = set()
        for f in frames:
            if f[0] not in GOSSIP_CODES:
                out.append(f)
                keys.append(None)
                continue
            d = blake3(f).digest()
            if d in self._new or d in self._old or d in batch:
                continue
            batch.add(d)
            out.append(f)
            keys.append(d)
        return out, keys, len(frames) - len(out)


@dataclass(slots=True)
class Batch:
    """Fresh gossip from one peer, in arrival order: the messages and their frames."""

    peer: Peer
    messages: list[Message]
    frames: list[bytes]
    nbytes: int


class Held:
    """Consensus messages of the next rounds, kept until the node gets there (docs/protocol.md
    §12): the node must keep a message it cannot judge yet, since another copy will not be
    delivered (`Seen`).

    Only rounds up to `window` ahead of the node's are kept (a message further ahead is
    dropped: the node is behind and syncs), at most `per_peer` bytes of frames from one
    peer (one message more when that peer has nothing held: a block may be large) and
    `limit` bytes in all; each entry keeps its frame and its peer, for the relay and for the
    peer's score.
    """

    def __init__(self, limit: int, per_peer: int, window: int) -> None:
        if min(limit, per_peer, window) < 1:
            raise ValueError("limit, per_peer and window: must be positive")
        self.limit = limit
        self.per_peer = per_peer
        self.window = window
        self.nbytes = 0
        self.dropped = 0
        self._rounds: dict[int, list[tuple[Message, bytes, object]]] = {}
        self._by_peer: dict[object, int] = {}

    def __len__(self) -> int:
        return sum(map(len, self._rounds.values()))

    def add(self, current: int, msg: Message, frame: bytes, peer: object) -> bool:
        """Keep `msg` (of a round after `current`, the node's); False when it is dropped."""
        r = msg.round  # type: ignore[union-attr]
        size = len(frame)
        mine = self._by_peer.get(peer, 0)
        if (
            not current < r <= current + self.window
            or (mine and mine + size > self.per_peer)
            or self.nbytes + size > self.limit
        ):
            self.dropped += 1
            return False
        self._rounds.setdefault(r, []).append((msg, frame, peer))
        self._by_peer[peer] = mine + size
        self.nbytes += size
        return True

    def take(self, current: int) -> list[tuple[Message, bytes, object]]:
        """The messages of round `current`, in arrival order; older rounds are forgotten."""
        out: list[tuple[Message, bytes, object]] = []
        for r in sorted(r for r in self._rounds if r <= current):
            entries = self._rounds.pop(r)
            for _, frame, peer in entries:
                self._by_peer[peer] -= len(frame)
                if not self._by_peer[peer]:
                    del self._by_peer[peer]
                self.nbytes -= len(frame)
            if r == current:
                out = entries
        return out
