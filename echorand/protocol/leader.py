"""The permissioned leader order (PROTOCOL §7, after the round-robin study of seed 002).

For a fixed validator list ``0 .. N-1`` and ``F = (N - 1) // 3``: the authors of the
last ``F`` accepted blocks are locked and propose nothing; the others, in
ascending order, are permuted by the ``T``-th permutation in lexicographic order,
``T = int_be(H(u32be(h))) mod (N - F)!``. The proposer of height ``h`` is the
first of that order who delivers a valid proposal in time.

All arithmetic is exact: the study's notebook divides ``k / n`` in floating point,
which picks wrong elements once ``(N - F)!`` exceeds 2^53.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from math import factorial


def max_faulty(n_validators: int) -> int:
    """F = (N - 1) // 3: the Byzantine validators the order tolerates."""
    return (n_validators - 1) // 3


def permutation_number(height: int, n_validators: int, seed: bytes | None = None) -> int:
    """T = int_be(H(u32be(h))) mod (N - F)!; seeded: int_be(H(Q || u64be(h))) mod (N - F)!."""
    if seed is None:
        if not 0 <= height < 1 << 32:
            raise ValueError(f"height must fit in u32, got {height}")
        digest = hashlib.sha256(height.to_bytes(4, "big")).digest()
    else:
        if len(seed) != 32:
            raise ValueError(f"seed must be 32 bytes, got {len(seed)}")
        digest = hashlib.sha256(bytes(seed) + height.to_bytes(8, "big")).digest()
    return int.from_bytes(digest, "big") % factorial(n_validators - max_faulty(n_validators))


def kth_permutation(items: Sequence[int], k: int) -> list[int]:
    """The k-th permutation of `items` in lexicographic order (factorial number system)."""
    pool = list(items)
    n = len(pool)
    if not 0 <= k < factorial(n):
        raise ValueError(f"k must be in [0, {n}!), got {k}")
    out: list[int] = []
    radix = factorial(n)
    for remaining in range(n, 0, -1):
        radix //= remaining
        index, k = divmod(k, radix)
        out.append(pool.pop(index))
    return out


def round_robin_order(
    n_validators: int, locked_ids: Iterable[int], height: int, *, seed: bytes | None = None
) -> list[int]:
    """The proposer order of `height`: the unlocked validators, permuted.

    `locked_ids` are the authors of the last F accepted blocks (fewer at the
    first heights, when fewer blocks exist: the unlocked list is then longer
    than N - F, and is permuted with the same T). With `seed` (the previous
    round's seed Q[r-1], `height` being the round r), the seeded variant of
    PROTOCOL §7 is used, whose order nobody knows before the previous block.
    """
    if n_validators < 1:
        raise ValueError(f"n_validators must be at least 1, got {n_validators}")
    locked = set(locked_ids)
    bad = sorted(v for v in locked if not 0 <= v < n_validators)
    if bad:
        raise ValueError(f"locked ids out of range 0..{n_validators - 1}: {bad}")
    f = max_faulty(n_validators)
    if len(locked) > f:
        raise ValueError(f"at most F={f} validators can be locked, got {len(locked)}")
    allowed = [v for v in range(n_validators) if v not in locked]
    return kth_permutation(allowed, permutation_number(height, n_validators, seed))
