"""Binary Byzantine agreement (steps 5..mu) and its common coin."""

from __future__ import annotations

import hashlib

from echorand.params import HASH_SIZE


def coin(seed: bytes, round: int, step: int) -> int:
    """coin(r, s) = H(Q[r-1] || u64be(r) || u32be(s) || "coin")[31] & 1 (PROTOCOL §5)."""
    if len(seed) != HASH_SIZE:
        raise ValueError(f"seed must be {HASH_SIZE} bytes, got {len(seed)}")
    digest = hashlib.sha256(
        bytes(seed) + round.to_bytes(8, "big") + step.to_bytes(4, "big") + b"coin"
    ).digest()
    return digest[31] & 1
