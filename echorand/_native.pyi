"""Type stubs for the native extension `echorand._native` (Rust, PyO3)."""

from collections.abc import Sequence

from typing_extensions import Buffer

# --- ed25519 (native/src/ed25519.rs) -----------------------------------------

def verify(public_key: Buffer, message: Buffer, signature: Buffer) -> bool:
    """ZIP 215 verification of one signature (PROTOCOL §2).

    `ValueError` when the key is not 32 bytes or the signature not 64.
    """

def verify_batch(
    public_keys: Sequence[Buffer],
    messages: Sequence[Buffer],
    signatures: Sequence[Buffer],
    threads: int | None = None,
) -> list[bool]:
    """`verify` of each triple, by batch verification; the GIL is released.

    `ValueError` for sequences of different lengths, a key that is not 32
    bytes or a signature that is not 64 (naming the item). `threads`: None
    for all cores, 1 for the calling thread, n for a pool of n threads.
    """

def is_valid_account_key(public_key: Buffer) -> bool:
    """False for a non-canonical encoding, a non-point or a small-order point."""
