"""Ed25519 keys, signed payloads and verification (PROTOCOL §2).

Keys are made and payloads signed with PyNaCl (libsodium): its signatures
are standard RFC 8032 signatures. Verification is always the native ZIP 215
verifier, one rule for single and batch verification: `ed25519-zebra`, and
for batches on CPUs with AVX-512 IFMA eight signatures per vector lane
(`_native.verify_backend()` says which), which gives every signature
ed25519-zebra's answer.
PyNaCl is never used to verify in consensus: libsodium rejects signatures
that ZIP 215 accepts (small-order and non-canonical points), and two nodes
that disagree about one signature fork.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from nacl.signing import SigningKey

from echorand import _native
from echorand.wire.constants import KEY_SIZE, SIGNATURE_SIZE

SEED_SIZE = 32
"""Bytes in a private key seed (RFC 8032's 32-byte private key)."""

BytesLike = bytes | bytearray | memoryview

__all__ = [
    "KEY_SIZE",
    "SEED_SIZE",
    "SIGNATURE_SIZE",
    "Keypair",
    "NativeVerifier",
    "Verifier",
    "is_valid_account_key",
    "signing_payload",
    "verify",
    "verify_batch",
]


@dataclass(frozen=True, slots=True, repr=False)
class Keypair:
    """An Ed25519 key pair: a secret 32-byte seed and its public key.

    Make one with `Keypair.generate()` or `Keypair.from_seed(seed)`. The
    repr shows the public key only.
    """

    signing_key: SigningKey
    public_key: bytes = field(init=False)
    """The 32-byte public key (a compressed Edwards point)."""

    def __post_init__(self) -> None:
        if not isinstance(self.signing_key, SigningKey):
            raise TypeError(
                f"signing_key must be a nacl.signing.SigningKey, "
                f"not {type(self.signing_key).__name__}"
            )
        object.__setattr__(self, "public_key", bytes(self.signing_key.verify_key))

    @classmethod
    def generate(cls) -> Keypair:
        """A new key pair from the OS random source."""
        return cls(SigningKey.generate())

    @classmethod
    def from_seed(cls, seed: BytesLike) -> Keypair:
        """The key pair of a 32-byte seed (deterministic: same seed, same keys)."""
        if len(seed) != SEED_SIZE:
            raise ValueError(f"seed must be {SEED_SIZE} bytes, got {len(seed)}")
        return cls(SigningKey(bytes(seed)))

    @property
    def seed(self) -> bytes:
        """The 32-byte secret seed."""
        return bytes(self.signing_key)

    def sign(self, payload: BytesLike) -> bytes:
        """The 64-byte signature of `payload` (usually a `signing_payload`)."""
        return self.signing_key.sign(bytes(payload)).signature

    def __repr__(self) -> str:
        return f"Keypair(public_key={self.public_key.hex()})"


def signing_payload(tag: bytes, body: BytesLike) -> bytes:
    """The bytes that are signed: `tag || 0x00 || body`.

    `tag` is an ASCII domain name (the `*_TAG` constants of
    `echorand.wire.constants`); it may not contain a zero byte, so that the payload
    has one reading and a signature made for one tag never verifies for
    another.
    """
    if not tag or not tag.isascii() or b"\x00" in tag:
        raise ValueError(f"tag must be non-empty ASCII without zero bytes, got {tag!r}")
    return tag + b"\x00" + bytes(body)


def verify(public_key: BytesLike, message: BytesLike, signature: BytesLike) -> bool:
    """Whether `signature` is valid for `message` under `public_key` (ZIP 215).

    Raises `ValueError` when the key is not 32 bytes or the signature not 64;
    any other invalid input gives `False`.
    """
    return _native.verify(public_key, message, signature)


def verify_batch(
    public_keys: Sequence[BytesLike],
    messages: Sequence[BytesLike],
    signatures: Sequence[BytesLike],
    *,
    threads: int | None = None,
) -> list[bool]:
    """`verify` of each (key, message, signature) triple, computed together.

    The answer for each signature is exactly what `verify` gives it alone,
    whatever else is in the batch. The three sequences must have the same
    length (else `ValueError`). The work runs in native code without the GIL,
    on all cores for large batches; `threads=1` keeps it on the calling
    thread, `threads=n` uses a pool of n threads.
    """
    return _native.verify_batch(public_keys, messages, signatures, threads)


def is_valid_account_key(public_key: BytesLike) -> bool:
    """Whether the ledger may create an account for `public_key`.

    False for a key that does not decode to a curve point; for a
    non-canonical encoding (`y >= p`, or `x = 0` with the sign bit set): a
    second spelling of a point, which would let one key own two accounts;
    and for the eight small-order points: signatures verify for them
    without any secret, so anyone could spend from such an account. Points
    with a small-order component beside a prime-order one are accepted: ZIP
    215's cofactored equation ignores the component. Raises `ValueError`
    when the key is not 32 bytes.
    """
    return _native.is_valid_account_key(public_key)


class Verifier(Protocol):
    """Verifies signatures in batches (one native call for many)."""

    def verify_batch(
        self, public_keys: Sequence[bytes], messages: Sequence[bytes], signatures: Sequence[bytes]
    ) -> list[bool]: ...


class NativeVerifier:
    """The native ZIP 215 verifier (`verify_batch`)."""

    def verify_batch(
        self, public_keys: Sequence[bytes], messages: Sequence[bytes], signatures: Sequence[bytes]
    ) -> list[bool]:
        if not public_keys:
            return []
        return verify_batch(public_keys, messages, signatures)
