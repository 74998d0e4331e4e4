"""Seeds Q[r] of PROTOCOL §4 against their formulas."""

from __future__ import annotations

import hashlib

import _ecvrf_model as model
import pytest
from hypothesis import given
from hypothesis import strategies as st
from nacl.signing import SigningKey

from echorand.protocol.seeds import next_seed, proof_problem, seed_credential, seed_signing_bytes
from echorand.wire.crypto import Keypair

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
        (bytes(32), 1, bytes(63), r"must be 64 bytes \(a signature\) or 80 .*, got 63"),
        (bytes(32), 1, b"", r"must be 64 bytes \(a signature\) or 80 .*, got 0"),
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


# --- the vrf seed mode ----------------------------------------------------------------

KEY = Keypair.from_seed(hashlib.sha256(b"test_seeds leader").digest())


@pytest.mark.parametrize("round", [1, 7, 2**40])
def test_with_a_vrf_proof_the_seed_is_the_hash_of_its_output(round: int) -> None:
    """Q[r] = H(beta || u64be(r)), beta the RFC 9381 output of the leader's proof over the seed
    payload; checked against the pure-Python model of RFC 9381."""
    prev = hashlib.sha256(round.to_bytes(8, "big")).digest()
    proof = seed_credential(KEY, "vrf", CHAIN, prev, round)
    payload = seed_signing_bytes(CHAIN, prev, round)
    assert proof == model.prove(KEY.seed, payload)
    beta = model.verify(KEY.public_key, payload, proof)
    assert beta is not None
    assert next_seed(prev, round, proof) == hashlib.sha256(beta + round.to_bytes(8, "big")).digest()
    assert proof_problem("vrf", KEY.public_key, CHAIN, prev, round, proof) is None


def test_a_seed_credential_of_the_wrong_kind_or_a_wrong_proof_is_a_problem() -> None:
    prev = bytes(32)
    proof = seed_credential(KEY, "vrf", CHAIN, prev, 3)
    sig = seed_credential(KEY, "signature", CHAIN, prev, 3)
    assert (
        len(sig) == 64 and proof_problem("signature", KEY.public_key, CHAIN, prev, 3, sig) is None
    )
    assert "needs 80" in (proof_problem("vrf", KEY.public_key, CHAIN, prev, 3, sig) or "")
    assert "needs 64" in (proof_problem("signature", KEY.public_key, CHAIN, prev, 3, proof) or "")
    other_round = seed_credential(KEY, "vrf", CHAIN, prev, 4)
    other_chain = seed_credential(KEY, "vrf", bytes(32), prev, 3)
    flipped = proof[:40] + bytes([proof[40] ^ 1]) + proof[41:]
    for bad in (other_round, other_chain, flipped):
        assert proof_problem("vrf", KEY.public_key, CHAIN, prev, 3, bad) == "bad seed proof"
