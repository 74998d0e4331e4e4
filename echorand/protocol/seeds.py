"""Seeds: Q[r] from Q[r-1] (PROTOCOL §4, docs/protocol.md §4).

A non-empty block of round r carries its leader's seed credential over
`"echorand/seed" || 0x00 || genesis_hash || u64be(r) || Q[r-1]`: under the
genesis's `seed_mode`, an Ed25519 signature S (64 bytes, `signature`) or an
RFC 9381 ECVRF proof π (80 bytes, `vrf`). Then

- `signature`: Q[r] = H(S || u64be(r));
- `vrf`: Q[r] = H(β || u64be(r)), β = the proof's 64-byte output (`echorand.wire.vrf`);
- after the empty block, in either mode: Q[r] = H(Q[r-1] || u64be(r)).

The credential's length says which it is (the block codec keeps them apart by
the block's kind byte); validation checks that it is the genesis's kind.
"""

from __future__ import annotations

import hashlib
from typing import Protocol

from echorand.wire import vrf
from echorand.wire.constants import HASH_SIZE, SEED_TAG, SIGNATURE_SIZE

VRF = "vrf"
"""`Params.seed_mode` of a chain whose seed credential is a VRF proof."""


class SeedKey(Protocol):
    """An account's key (`echorand.wire.crypto.Keypair`): it signs, and its seed proves."""

    @property
    def seed(self) -> bytes: ...

    def sign(self, payload: bytes) -> bytes: ...


def seed_signing_bytes(chain: bytes, prev_seed: bytes, round: int) -> bytes:
    """The payload a leader signs (or proves) to make its seed credential:
    `"echorand/seed" || 0x00 || genesis_hash || u64be(r) || Q[r-1]` (`chain` is the genesis
    hash, PROTOCOL §2)."""
    _check_seed(prev_seed)
    if len(chain) != HASH_SIZE:
        raise ValueError(f"chain must be the {HASH_SIZE}-byte genesis hash, got {len(chain)} bytes")
    return SEED_TAG + b"\x00" + bytes(chain) + round.to_bytes(8, "big") + prev_seed


def seed_credential(key: SeedKey, mode: str, chain: bytes, prev_seed: bytes, round: int) -> bytes:
    """The leader's credential for round `round` under seed mode `mode`: its signature of the
    seed payload, or its VRF proof of it."""
    payload = seed_signing_bytes(chain, prev_seed, round)
    return vrf.prove(key.seed, payload) if mode == VRF else key.sign(payload)


def credential_size(mode: str) -> int:
    """The length of a seed credential under `mode`: 64 (signature) or 80 (VRF proof)."""
    return vrf.PROOF_SIZE if mode == VRF else SIGNATURE_SIZE


def next_seed(prev_seed: bytes, round: int, credential: bytes | None) -> bytes:
    """Q[r]: H(S || u64be(r)) after a block with a signature S, H(β || u64be(r)) after one with
    a VRF proof (β its output; the proof must have been verified), H(Q[r-1] || u64be(r)) after
    the empty one."""
    _check_seed(prev_seed)
    if round < 1:
        raise ValueError(f"round must be >= 1, got {round}")
    r = round.to_bytes(8, "big")
    if credential is None:
        return hashlib.sha256(prev_seed + r).digest()
    if len(credential) == vrf.PROOF_SIZE:
        return hashlib.sha256(vrf.proof_to_hash(credential) + r).digest()
    if len(credential) != SIGNATURE_SIZE:
        raise ValueError(
            f"the seed credential must be {SIGNATURE_SIZE} bytes (a signature) or"
            f" {vrf.PROOF_SIZE} (a VRF proof), got {len(credential)}"
        )
    return hashlib.sha256(bytes(credential) + r).digest()


def proof_problem(
    mode: str, public_key: bytes, chain: bytes, prev_seed: bytes, round: int, credential: bytes
) -> str | None:
    """Why `credential` cannot be the VRF seed credential of a block of `round` whose leader
    has `public_key`, or None. Under the `vrf` mode it must be an 80-byte proof that verifies;
    under `signature`, a 64-byte signature (which the caller verifies, in a batch)."""
    if len(credential) != credential_size(mode):
        return f"the seed credential is {len(credential)} bytes; the genesis's {mode} needs" + (
            f" {credential_size(mode)}"
        )
    if mode != VRF:
        return None
    payload = seed_signing_bytes(chain, prev_seed, round)
    return None if vrf.verify(public_key, payload, credential) is not None else "bad seed proof"


def _check_seed(seed: bytes) -> None:
    if len(seed) != HASH_SIZE:
        raise ValueError(f"seed must be {HASH_SIZE} bytes, got {len(seed)}")
