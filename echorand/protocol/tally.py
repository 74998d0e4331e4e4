"""Counting votes by weight of distinct signers (PROTOCOL §3, §5).

A signer's weight in a step is the number of seats it holds in `A_s`. A
signer counts once per step, with its first message; a second message from
it in the same step (equivocation) adds nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from typing import Generic, TypeVar

from echorand.wire.messages import NO_LEADER, Block

Value = tuple[bytes, int]
"""v = {block_hash, leader}, the whitepaper's value."""


def empty_value(round: int, prev_hash: bytes) -> Value:
    """{∅, ∅} of round r on H(B_{r-1}): `(H(B_ε), 2^64 - 1)`, the hash of the round's empty
    block and no leader (PROTOCOL §5, revision 2). It binds a vote for the empty block to the
    fork it was cast on."""
    return (Block.empty(round, prev_hash).hash, NO_LEADER)


def is_empty(value: Value) -> bool:
    """Whether `value` is an empty value (of some round; validation checks which)."""
    return value[1] == NO_LEADER


K = TypeVar("K", bound=Hashable)


class Tally(Generic[K]):
    """The weight behind each key in one step, counting each signer once."""

    __slots__ = ("_choice", "_seats", "_weight")

    def __init__(self) -> None:
        self._choice: dict[int, K] = {}
        self._seats: dict[int, int] = {}
        self._weight: dict[K, int] = {}

    def add(self, signer: int, weight: int, key: K) -> bool:
        """Count `signer` for `key`; False (and nothing counted) if it already voted."""
        if signer in self._choice:
            return False
        self._choice[signer] = key
        self._seats[signer] = weight
        self._weight[key] = self._weight.get(key, 0) + weight
        return True

    def replace(self, signer: int, weight: int, key: K) -> None:
        """Count `signer` for `key` instead of what it was counted for (a principal's own
        vote, or a better substitute, overriding a substitute: docs/protocol.md §16)."""
        old = self._choice.pop(signer, None)
        if old is not None:
            self._weight[old] -= self._seats.pop(signer)
        self.add(signer, weight, key)

    def copy(self) -> Tally[K]:
        out: Tally[K] = Tally()
        out._choice = dict(self._choice)
        out._seats = dict(self._seats)
        out._weight = dict(self._weight)
        return out

    def has_voted(self, signer: int) -> bool:
        return signer in self._choice

    def weight(self, key: K) -> int:
        return self._weight.get(key, 0)

    def above(self, threshold: int, keep: Callable[[K], bool] | None = None) -> K | None:
        """The key of largest weight if that weight is > threshold, else None.

        Ties between keys above the threshold (possible only below half the
        seats) go to the smallest key, so every node picks the same one.
        Only keys for which `keep(key)` holds are considered (all without it).
        """
        above = [
            (-weight, key)
            for key, weight in self._weight.items()
            if weight > threshold and (keep is None or keep(key))
        ]
        return min(above)[1] if above else None  # type: ignore[type-var]

    def signers(self, key: K) -> Iterator[int]:
        """The signers counted for `key`."""
        return (signer for signer, k in self._choice.items() if k == key)

    def __len__(self) -> int:
        return len(self._choice)
