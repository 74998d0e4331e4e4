"""Who may produce a block in step 1 of a round, and in which priority order.

The policy is fixed in the genesis (`Params.proposer_policy`):

- `sortition` (the default, PROTOCOL §3): `A_1` is seats `0 .. N_g-1` of
  step 1, drawn by stake; a producer's priority is the lowest seat it holds.
- `round-robin` (PROTOCOL §7, for a fixed validator set): validator `i` is
  account `i`, `0 <= i < N = Params.validators`, `F = (N - 1) // 3`. The
  authors of the last `F` committed non-empty blocks are locked; the others
  are ordered by `echorand.protocol.leader.round_robin_order(N, locked, r)` (height =
  round). The first `N_g` of that order are the producers, and a producer's
  priority is its position: step 2's leader, "the best priority heard by
  2λ", is the first of the order who delivered.
- `round-robin-seeded`: the same order permuted by `H(Q[r-1] || u64be(r))`,
  which nobody knows before block `r - 1` is decided.

Verifier committees (steps >= 2) are drawn by sortition under every policy.
The recent authors come from the chain: the caller's `Tip.authors`, the
producers of the last non-empty blocks, which the core keeps up to date as
it commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from echorand.protocol.leader import max_faulty, round_robin_order
from echorand.protocol.params import PROPOSER_POLICIES, Params
from echorand.protocol.sortition import PRODUCER_STEP, StakeTable

SORTITION, ROUND_ROBIN, ROUND_ROBIN_SEEDED = PROPOSER_POLICIES
POLICIES = PROPOSER_POLICIES


class ProposerPolicy(Protocol):
    """Chooses `A_1`, the producers of a round, in priority order."""

    @property
    def lock_depth(self) -> int:
        """How many recent authors the policy reads (`Tip.authors` keeps that many)."""
        ...

    def producer_seats(
        self, table: StakeTable, seed: bytes, round: int, n_g: int, authors: Sequence[int]
    ) -> list[int]:
        """The account of each producer seat, best first; an account's priority is the
        index of its first seat. `seed` is Q[round-1], `authors` the producers of the
        last non-empty blocks (most recent last)."""
        ...


class SortitionPolicy:
    """A_1 by stake: seats 0 .. N_g-1 of VRF(r, 1)."""

    lock_depth = 0

    def producer_seats(
        self, table: StakeTable, seed: bytes, round: int, n_g: int, authors: Sequence[int]
    ) -> list[int]:
        return table.committee(seed, round, PRODUCER_STEP, n_g)


class RoundRobinPolicy:
    """The permissioned order of PROTOCOL §7 over validators 0 .. n_validators-1."""

    __slots__ = ("n_validators", "seeded")

    def __init__(self, n_validators: int, *, seeded: bool = False) -> None:
        if n_validators < 1:
            raise ValueError(f"n_validators must be at least 1, got {n_validators}")
        self.n_validators = n_validators
        self.seeded = seeded

    @property
    def lock_depth(self) -> int:
        """F = (N - 1) // 3."""
        return max_faulty(self.n_validators)

    def locked(self, authors: Sequence[int]) -> list[int]:
        """The authors of the last F non-empty blocks."""
        f = self.lock_depth
        return list(authors[-f:]) if f else []

    def order(self, seed: bytes, round: int, authors: Sequence[int]) -> list[int]:
        """The proposer order of `round`: the unlocked validators, permuted."""
        return round_robin_order(
            self.n_validators,
            self.locked(authors),
            round,
            seed=seed if self.seeded else None,
        )

    def producer_seats(
        self, table: StakeTable, seed: bytes, round: int, n_g: int, authors: Sequence[int]
    ) -> list[int]:
        return self.order(seed, round, authors)[:n_g]


def policy_for(params: Params) -> ProposerPolicy:
    """The policy the genesis parameters select."""
    if params.proposer_policy == SORTITION:
        return SortitionPolicy()
    seeded = params.proposer_policy == ROUND_ROBIN_SEEDED
    return RoundRobinPolicy(params.validators, seeded=seeded)


def next_authors(authors: tuple[int, ...], producer: int | None, depth: int) -> tuple[int, ...]:
    """The recent authors after a block: `producer` appended (None: an empty block, no change),
    the last `depth` kept."""
    if producer is None:
        return authors[-depth:] if depth else ()
    return (*authors, producer)[-depth:] if depth else ()
