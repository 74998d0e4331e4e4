"""Seeds Q[r] of PROTOCOL §4 against their formulas."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st
from nacl.signing import SigningKey

from echorand.protocol.seeds import next_seed, seed_signing_bytes

CHAIN = hashlib.sha256(b"test_seeds chain").digest()
"""The genesis hash the seed signature is bound to (PROTOCOL §2, §4)."""

seeds = st.binary(min_size=32, max_size=32)
rounds = st.integers(1, 2**64 - 1)


@given(prev=seeds, round=rounds)
def test_after_the_empty_block_the_seed_is_the_hash_of_the_previous_one(
    prev: bytes, round: int
) -> None:
    assert next_seed(prev, round, None) == hashlib.sha256(prev + round.to_bytes(8, "big")).digest()


@given(prev=seeds, round=rounds, sig=st.binary(min_size=64, max_size=64))
def test_after_a_block_the_seed_is_the_hash_of_the_leader_signature(
    prev: bytes, round: int, sig: bytes
) -> None:
    assert next_seed(prev, round, sig) == hashlib.sha256(sig + round.to_bytes(8, "big")).digest()


@given(prev=seeds, round=rounds)
def test_the_leader_signs_the_tag_the_round_and_the_previous_seed(prev: bytes, round: int) -> None:
    assert seed_signing_bytes(CHAIN, prev, round) == (
        b"echorand/seed" + b"\x00" + CHAIN + round.to_bytes(8, "big") + prev
    )


def test_a_real_leader_signature_makes_the_seed() -> None:
    key = SigningKey(bytes(range(32)))
    prev = hashlib.sha256(b"genesis").digest()
    sig = key.sign(seed_signing_bytes(CHAIN, prev, 7)).signature
    assert len(sig) == 64
    key.verify_key.verify(b"echorand/seed\x00" + CHAIN + (7).to_bytes(8, "big") + prev, sig)
    assert next_seed(prev, 7, sig) == hashlib.sha256(sig + (7).to_bytes(8, "big")).digest()
    assert next_seed(prev, 7, sig) != next_seed(prev, 7, None)


def test_the_seed_depends_on_the_round() -> None:
    prev = bytes(32)
    assert next_seed(prev, 1, None) != next_seed(prev, 2, None)


@pytest.mark.parametrize(
    ("prev", "round", "sig", "match"),
    [
        (bytes(31), 1, None, "seed must be 32 bytes, got 31"),
        (bytes(33), 1, bytes(64), "seed must be 32 bytes, got 33"),
        (bytes(32), 0, None, "round must be >= 1, got 0"),
        (bytes(32), 1, bytes(63), "leader_sig must be 64 bytes, got 63"),
        (bytes(32), 1, b"", "leader_sig must be 64 bytes, got 0"),
    ],
)
def test_bad_seed_inputs_are_refused(
    prev: bytes, round: int, sig: bytes | None, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        next_seed(prev, round, sig)


def test_signing_bytes_refuse_a_short_seed() -> None:
    with pytest.raises(ValueError, match="seed must be 32 bytes"):
        seed_signing_bytes(CHAIN, bytes(16), 1)
    with pytest.raises(ValueError, match="chain must be the 32-byte genesis hash"):
        seed_signing_bytes(bytes(31), bytes(32), 1)
