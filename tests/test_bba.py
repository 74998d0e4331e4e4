"""The common coin of PROTOCOL §5 against its formula."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from echorand.bba import coin


@given(
    seed=st.binary(min_size=32, max_size=32),
    round=st.integers(1, 2**64 - 1),
    step=st.integers(5, 2**32 - 1),
)
def test_coin_is_the_last_bit_of_the_hash(seed: bytes, round: int, step: int) -> None:
    digest = hashlib.sha256(
        seed + round.to_bytes(8, "big") + step.to_bytes(4, "big") + b"coin"
    ).digest()
    assert coin(seed, round, step) == digest[31] & 1


def test_coin_takes_both_values_across_steps() -> None:
    seed = hashlib.sha256(b"coin seed").digest()
    flips = [coin(seed, 3, s) for s in range(7, 7 + 3 * 40, 3)]
    assert set(flips) == {0, 1}


def test_coin_of_known_inputs() -> None:
    """Pinned: the last digest bytes for steps 5..11 are 17 55 eb 37 d5 0d fc."""
    assert [coin(bytes(32), 1, s) for s in range(5, 12)] == [1, 1, 1, 1, 1, 1, 0]


@pytest.mark.parametrize("length", [0, 31, 33, 64])
def test_coin_refuses_a_seed_of_the_wrong_length(length: int) -> None:
    with pytest.raises(ValueError, match=f"seed must be 32 bytes, got {length}"):
        coin(bytes(length), 1, 7)
