"""The permissioned leader order of PROTOCOL §7 against a slow model."""

from __future__ import annotations

import hashlib
import itertools
from math import factorial

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from echorand.protocol.leader import kth_permutation, max_faulty, round_robin_order


def slow_order(n: int, locked: list[int], height: int) -> list[int]:
    """Enumerate permutations in lexicographic order and take the T-th."""
    allowed = [v for v in range(n) if v not in locked]
    t = int.from_bytes(hashlib.sha256(height.to_bytes(4, "big")).digest(), "big")
    t %= factorial(n - max_faulty(n))
    return list(next(itertools.islice(itertools.permutations(allowed), t, None)))


def quick_authors(n: int, heights: int) -> list[int]:
    f = max_faulty(n)
    locked: list[int] = []
    authors = []
    for h in range(heights):
        author = round_robin_order(n, locked, h)[0]
        authors.append(author)
        locked = [*locked, author][-f:] if f else []
    return authors


def test_first_ten_authors_match_the_study() -> None:
    assert quick_authors(16, 10) == [0, 1, 2, 3, 4, 6, 14, 10, 5, 1]


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 7), height=st.integers(0, 2**32 - 1), data=st.data())
def test_matches_the_lexicographic_enumeration(n: int, height: int, data: st.DataObject) -> None:
    f = max_faulty(n)
    locked = data.draw(st.lists(st.integers(0, n - 1), max_size=f, unique=True))
    assert round_robin_order(n, locked, height) == slow_order(n, locked, height)


def test_first_heights_permute_every_unlocked_validator() -> None:
    # Fewer than F blocks exist: the list is longer than N - F, with the same T.
    order = round_robin_order(16, [], 0)
    assert sorted(order) == list(range(16))
    assert round_robin_order(16, [3], 7) == slow_order_big(16, [3], 7)


def slow_order_big(n: int, locked: list[int], height: int) -> list[int]:
    """Exact, digit by digit, for sizes where enumeration is too slow."""
    allowed = [v for v in range(n) if v not in locked]
    t = int.from_bytes(hashlib.sha256(height.to_bytes(4, "big")).digest(), "big")
    t %= factorial(n - max_faulty(n))
    out = []
    while allowed:
        block = factorial(len(allowed) - 1)
        out.append(allowed.pop(t // block))
        t %= block
    return out


def test_exact_beyond_float_precision() -> None:
    # (N - F)! > 2^53 from N - F = 19: a float division would pick wrong elements.
    n = 100
    assert factorial(n - max_faulty(n)) > 2**53
    locked = list(range(10, 10 + max_faulty(n)))
    for height in (0, 1, 12345, 2**32 - 1):
        assert round_robin_order(n, locked, height) == slow_order_big(n, locked, height)


def test_an_honest_author_within_f_plus_one_blocks_when_byzantine_always_win() -> None:
    n, f = 16, 5
    locked: list[int] = []
    since_honest = 0
    for h in range(3000):
        order = round_robin_order(n, locked, h)
        byzantine = [v for v in order if v < f]
        author = byzantine[0] if byzantine else order[0]
        since_honest = 0 if author >= f else since_honest + 1
        assert since_honest <= f
        locked = [*locked, author][-f:]


def test_seeded_variant_depends_on_the_seed() -> None:
    a = round_robin_order(16, [], 5, seed=bytes(32))
    b = round_robin_order(16, [], 5, seed=b"\x01" * 32)
    assert sorted(a) == sorted(b) == list(range(16))
    assert a != b


def test_kth_permutation_bounds() -> None:
    assert kth_permutation([1, 2, 3], 0) == [1, 2, 3]
    assert kth_permutation([1, 2, 3], 5) == [3, 2, 1]
    with pytest.raises(ValueError, match="k must be"):
        kth_permutation([1, 2, 3], 6)


@pytest.mark.parametrize(
    ("n", "locked", "message"),
    [(0, [], "n_validators"), (4, [4], "out of range"), (4, [0, 1], "at most F=1")],
)
def test_bad_arguments_are_named(n: int, locked: list[int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        round_robin_order(n, locked, 0)
