"""A verifiable random function with unique proofs: ECVRF-EDWARDS25519-SHA512-ELL2 (RFC 9381).

The unbiasable seed that PROTOCOL §4 asks for: only the holder of a key can
compute the output of an input, anyone can check it with the public key,
and each (key, input) has exactly one output, so a leader has nothing to
grind, unlike an Ed25519 signature, whose nonce the signer chooses. See
`docs/vrf.md` for the byte layout and the reasons for the suite.

- `prove(seed, alpha)`: the 80-byte proof `Gamma || c || s`, deterministic.
- `proof_to_hash(proof)`: its 64-byte output, without verifying it.
- `verify(public_key, alpha, proof)`: the output, or None.
- `verify_batch(public_keys, alphas, proofs)`: `verify` of each, natively,
  without the GIL, on all cores for large batches.

Keys are the project's Ed25519 keys (`echorand.wire.crypto.Keypair`): the secret
is the 32-byte seed, the public key the Ed25519 public key. Verification
refuses small-order keys and non-canonical point encodings. The work is
native (`echorand._native`, `native/src/vrf.rs`).
"""

from __future__ import annotations

from collections.abc import Sequence

from echorand import _native

BytesLike = bytes | bytearray | memoryview

SUITE = "ECVRF-EDWARDS25519-SHA512-ELL2"
"""The RFC 9381 ciphersuite (suite_string 0x04)."""
SUITE_STRING: int = _native.VRF_SUITE
PROOF_SIZE: int = _native.VRF_PROOF_SIZE
"""80: Gamma (32, a point) || c (16, little-endian) || s (32, little-endian, < q)."""
OUTPUT_SIZE: int = _native.VRF_OUTPUT_SIZE
"""64: beta = SHA-512(0x04 || 0x03 || encode(8 * Gamma) || 0x00)."""

__all__ = [
    "OUTPUT_SIZE",
    "PROOF_SIZE",
    "SUITE",
    "SUITE_STRING",
    "proof_to_hash",
    "prove",
    "verify",
    "verify_batch",
]


def prove(seed: BytesLike, alpha: BytesLike) -> bytes:
    """The proof of `alpha` under the key of the 32-byte Ed25519 `seed` (RFC 9381 §5.1).

    Deterministic: the same seed and alpha give the same proof. Raises
    `ValueError` when `seed` is not 32 bytes.
    """
    return _native.vrf_prove(seed, alpha)


def proof_to_hash(proof: BytesLike) -> bytes:
    """The 64-byte output of `proof` (RFC 9381 §5.2), which is *not* verified here.

    Use it on proofs one made or already verified; `verify` gives the same
    output for a valid proof. Raises `ValueError` when the proof is not 80
    bytes or does not decode (Gamma not a canonical point, s >= q).
    """
    return _native.vrf_proof_to_hash(proof)


def verify(public_key: BytesLike, alpha: BytesLike, proof: BytesLike) -> bytes | None:
    """The output when `proof` is valid for `alpha` under `public_key`, else None.

    RFC 9381 §5.3 with `validate_key`: a key or Gamma that is not the
    canonical encoding of a point, a small-order key, `s >= q` or a wrong
    challenge give None. Raises `ValueError` when the key is not 32 bytes or
    the proof not 80.
    """
    return _native.vrf_verify(public_key, alpha, proof)


def verify_batch(
    public_keys: Sequence[BytesLike],
    alphas: Sequence[BytesLike],
    proofs: Sequence[BytesLike],
    *,
    threads: int | None = None,
) -> list[bytes | None]:
    """`verify` of each (key, alpha, proof) triple: each answer is what `verify` gives alone.

    The sequences must have the same length (else `ValueError`). The work
    runs natively without the GIL; chunks of proofs share their point
    compressions (one field inversion a chunk) and run on all cores;
    `threads=1` keeps it on the calling thread, `threads=n` uses n threads.
    """
    return _native.vrf_verify_batch(public_keys, alphas, proofs, threads)
