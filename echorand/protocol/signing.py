"""Making the signed messages of a round (docs/protocol.md §6).

Each function builds the message, signs the exact bytes its signature is
over (`signing_bytes(chain)`, tag and genesis hash included: PROTOCOL §2)
with the account's key, and returns the signed message. `chain` is the
genesis hash. Ed25519 signing is deterministic: no randomness here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from echorand.protocol.seeds import seed_credential
from echorand.protocol.tally import Value
from echorand.wire.constants import SIGNATURE_SIZE
from echorand.wire.messages import (
    FINAL_STEP,
    BbaSignature,
    Block,
    Certificate,
    FinalVote,
    GcBlock,
    GcProposal,
    GcSignature,
    Transaction,
)

NO_SIGNATURE = bytes(SIGNATURE_SIZE)
"""Placeholder while the bytes to sign are computed (never sent)."""


class Signer(Protocol):
    """An account's key (`echorand.wire.crypto.Keypair`)."""

    @property
    def public_key(self) -> bytes: ...

    def sign(self, payload: bytes) -> bytes: ...


class Leader(Signer, Protocol):
    """A producer's key: it signs, and under a `vrf` genesis it proves with its seed."""

    @property
    def seed(self) -> bytes: ...


def sign_block(
    key: Leader,
    chain: bytes,
    round: int,
    prev_hash: bytes,
    producer: int,
    prev_seed: bytes,
    transactions: Sequence[Transaction],
    prev_cert: Certificate | None = None,
    *,
    seed_mode: str = "signature",
) -> Block:
    """B_r by `producer`, with its seed credential over Q[r-1] (a signature, or a VRF proof
    when `seed_mode` is "vrf": `echorand.protocol.seeds`) and block signature, carrying CERT_{r-1}
    when block r-1 is a proposed block (docs/protocol.md §16)."""
    seed_sig = seed_credential(key, seed_mode, chain, prev_seed, round)
    fields = (round, prev_hash, producer, seed_sig, tuple(transactions))
    draft = Block(*fields, NO_SIGNATURE, prev_cert)
    return Block(*fields, key.sign(draft.signing_bytes(chain)), prev_cert)


def sign_gc_block(key: Signer, chain: bytes, sender: int, block: Block) -> GcBlock:
    draft = GcBlock(block.round, 1, sender, block, NO_SIGNATURE)
    return GcBlock(block.round, 1, sender, block, key.sign(draft.signing_bytes(chain)))


def sign_gc_signature(key: Signer, chain: bytes, sender: int, block: Block) -> GcSignature:
    """gc_signature {r, id, sig(Q[r-1]), H(B_r), H(B_{r-1})} for a producer's block."""
    assert block.seed_sig is not None
    fields = (block.round, 1, sender, block.seed_sig, block.hash, block.prev_hash)
    draft = GcSignature(*fields, NO_SIGNATURE)
    return GcSignature(*fields, key.sign(draft.signing_bytes(chain)))


def sign_proposal(
    key: Signer, chain: bytes, round: int, step: int, sender: int, value: Value
) -> GcProposal:
    """gc_proposal {r, s, id, v} (steps 2 and 3)."""
    fields = (round, step, sender, value[0], value[1])
    draft = GcProposal(*fields, NO_SIGNATURE)
    return GcProposal(*fields, key.sign(draft.signing_bytes(chain)))


def sign_vote(
    key: Signer, chain: bytes, round: int, step: int, sender: int, b: int, value: Value
) -> BbaSignature:
    """bba_signature {r, s, id, b, v, sig(r, s, b, v)} (`value`: the round's empty value when
    b = 1)."""
    draft = BbaSignature(round, step, sender, b, value[0], value[1], NO_SIGNATURE, NO_SIGNATURE)
    cert_sig = key.sign(draft.cert_signing_bytes(chain))
    fields = (round, step, sender, b, value[0], value[1], cert_sig)
    draft = BbaSignature(*fields, NO_SIGNATURE)
    return BbaSignature(*fields, key.sign(draft.signing_bytes(chain)))


def sign_final(key: Signer, chain: bytes, round: int, sender: int, block_hash: bytes) -> FinalVote:
    """final_vote {r, 2^32 - 1, id, H(B_r)}: `sender` decided block `block_hash` from the first
    deciding step's votes and signed nothing later in the round (PROTOCOL §6)."""
    draft = FinalVote(round, FINAL_STEP, sender, block_hash, NO_SIGNATURE)
    return FinalVote(round, FINAL_STEP, sender, block_hash, key.sign(draft.signing_bytes(chain)))
