"""Building signed blocks and certificates for ledger tests, with real keys.

The ledger checks that a certificate names its block, not the votes (that
needs the committee): the votes here are real signatures by devnet keys
over the certificate's vote body all the same.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from echorand.protocol.seeds import seed_credential
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
    seed_mode: str = "signature",
) -> Block:
    """A block of `round` by `producer`, with its seed credential (a signature, or a VRF
    proof under `seed_mode="vrf"`), signed for the network `chain` (its genesis hash),
    carrying `prev_cert` (CERT_{r-1}, which the ledger requires after a proposed block)."""
    seed_sig = seed_credential(keypair, seed_mode, chain, prev_seed, round)
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


def pattern_key(account: int) -> Keypair:
    """The key of `account` in `pattern_chain`'s blocks."""
    return Keypair.from_seed(hashlib.sha256(b"pattern key %d" % account).digest())


def pattern_chain(
    pattern: str, prev: bytes = bytes(32), start: int = 1, *, chain: bytes = bytes(32)
) -> list[tuple[Block, Certificate]]:
    """Certified blocks of rounds `start`, `start + 1`, ... after `prev`, one per character
    of `pattern`: '.' the empty block, a letter a block signed by account `ord(letter) -
    ord('a')` (a distinct hash per round and letter). The certificates carry no votes:
    for the fork choice and the fork plan, which look at the blocks and values only."""
    out: list[tuple[Block, Certificate]] = []
    for round, tag in enumerate(pattern, start=start):
        if tag == ".":
            block = Block.empty(round, prev)
        else:
            producer = ord(tag) - ord("a")
            block = proposed_block(
                round, prev, bytes(32), producer, pattern_key(producer), chain=chain
            )
        out.append((block, certificate(block, (), chain=chain)))
        prev = block.hash
    return out
