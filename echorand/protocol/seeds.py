"""Seeds: Q[r] from Q[r-1] (PROTOCOL §4)."""

from __future__ import annotations

import hashlib

from echorand.wire.constants import HASH_SIZE, SEED_TAG, SIGNATURE_SIZE


def seed_signing_bytes(chain: bytes, prev_seed: bytes, round: int) -> bytes:
    """The payload a leader signs to make S:
    `"echorand/seed" || 0x00 || genesis_hash || u64be(r) || Q[r-1]` (`chain` is the genesis
    hash, PROTOCOL §2)."""
    _check_seed(prev_seed)
    if len(chain) != HASH_SIZE:
        raise ValueError(f"chain must be the {HASH_SIZE}-byte genesis hash, got {len(chain)} bytes")
    return SEED_TAG + b"\x00" + bytes(chain) + round.to_bytes(8, "big") + prev_seed


def next_seed(prev_seed: bytes, round: int, leader_sig: bytes | None) -> bytes:
    """Q[r]: H(S || u64be(r)) after a non-empty block, H(Q[r-1] || u64be(r)) after the empty one."""
    _check_seed(prev_seed)
    if round < 1:
        raise ValueError(f"round must be >= 1, got {round}")
    if leader_sig is None:
        return hashlib.sha256(prev_seed + round.to_bytes(8, "big")).digest()
    if len(leader_sig) != SIGNATURE_SIZE:
        raise ValueError(f"leader_sig must be {SIGNATURE_SIZE} bytes, got {len(leader_sig)}")
    return hashlib.sha256(bytes(leader_sig) + round.to_bytes(8, "big")).digest()


def _check_seed(seed: bytes) -> None:
    if len(seed) != HASH_SIZE:
        raise ValueError(f"seed must be {HASH_SIZE} bytes, got {len(seed)}")
