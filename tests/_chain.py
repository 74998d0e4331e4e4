"""Building signed blocks and certificates for ledger tests, with real keys.

The ledger checks that a certificate names its block, not the votes (that
needs the committee): the votes here are real signatures by devnet keys
over the certificate's vote body all the same.
"""

from __future__ import annotations

from collections.abc import Sequence

from echorand.protocol.seeds import seed_signing_bytes
from echorand.wire.constants import SIGNATURE_SIZE
from echorand.wire.crypto import Keypair
from echorand.wire.messages import NO_LEADER, Block, Certificate, Transaction

CERT_STEPS = {0: 4, 1: 5}
"""The step a certificate of each bit is made at (the first step whose votes decide it)."""
_ZERO_SIG = bytes(SIGNATURE_SIZE)


def proposed_block(
    round: int,
    prev_hash: bytes,
    prev_seed: bytes,
    producer: int,
    keypair: Keypair,
    transactions: Sequence[Transaction] = (),
    prev_cert: Certificate | None = None,
    *,
    chain: bytes,
) -> Block:
    """A block of `round` by `producer`, with its seed signature, signed for the network
    `chain` (its genesis hash), carrying `prev_cert` (CERT_{r-1}, which the ledger requires
    after a proposed block)."""
    seed_sig = keypair.sign(seed_signing_bytes(chain, prev_seed, round))
    fields = (round, prev_hash, producer, seed_sig, transactions)
    unsigned = Block(*fields, _ZERO_SIG, prev_cert)
    return Block(*fields, keypair.sign(unsigned.signing_bytes(chain)), prev_cert)


def certificate(
    block: Block, signers: Sequence[tuple[int, Keypair]], *, chain: bytes
) -> Certificate:
    """A certificate for `block` (b = 0 for a proposed block, b = 1 with the empty value for
    the empty one), its votes signed for the network `chain`."""
    if block.is_empty:
        b, value = 1, (block.hash, NO_LEADER)
    else:
        b, value = 0, (block.hash, block.producer)
    step = CERT_STEPS[b]
    unsigned = Certificate(block.round, step, b, value[0], value[1], [])
    body = unsigned.vote_signing_bytes(chain)
    votes = [(i, kp.sign(body)) for i, kp in sorted(signers, key=lambda s: s[0])]
    return Certificate(block.round, step, b, value[0], value[1], votes)
