"""Final and tentative blocks (PROTOCOL §6; docs/protocol.md §10).

A node that decided from the votes of the first deciding step — step 4's `b = 0` for a
block, step 5's `b = 1` for the empty block — before it signed any later vote of the round
also sends a `final_vote` for that block (the reserved step `2^32 - 1`, its own committee,
one per local account with seats there). A block whose final votes weigh more than `t_f`
in that committee is *final*: under the committee check of PROTOCOL §5 no other value of
its round can ever be certified, whatever the schedule, so a final block is never rolled
back. Every other committed block is *tentative*: the fork choice may replace it.

`FinalTally` counts one round's final votes; `FinalCertificate` is the proof a block is
final (the final votes of weight > t_f for it), which the ledger keeps and the API serves.

Stored encoding of a final certificate:
`u64be(round) || block_hash 32 || u32be(count) || (signer u64 || signature 64) * count`,
signers strictly ascending.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise

from echorand.protocol.committee import RoundContext
from echorand.protocol.signing import NO_SIGNATURE
from echorand.protocol.tally import Tally
from echorand.wire.constants import HASH_SIZE, SIGNATURE_SIZE
from echorand.wire.messages import FINAL_STEP, FinalProof, FinalVote

PublicKeys = Callable[[int], bytes | None]
SignatureCheck = tuple[bytes, bytes, bytes]

_HEAD = struct.Struct(">Q32sI")
_VOTE = struct.Struct(">Q64s")
MAX_FINAL_VOTES = 10_000


class FinalityError(ValueError):
    """A final certificate that does not prove its block final; the text says why."""


@dataclass(frozen=True, slots=True)
class FinalCertificate:
    """The final votes of weight > t_f for block `block_hash` of `round`."""

    round: int
    block_hash: bytes
    votes: tuple[tuple[int, bytes], ...]
    """(signer, signature), signers strictly ascending."""

    def __post_init__(self) -> None:
        if len(self.block_hash) != HASH_SIZE:
            raise ValueError(f"final_certificate.block_hash: must be {HASH_SIZE} bytes")
        signers = [s for s, _ in self.votes]
        if any(b <= a for a, b in pairwise(signers)):
            raise ValueError("final_certificate.votes: signers not strictly ascending")
        if len(self.votes) > MAX_FINAL_VOTES:
            raise ValueError(f"final_certificate.votes: over the limit of {MAX_FINAL_VOTES}")
        if any(len(sig) != SIGNATURE_SIZE for _, sig in self.votes):
            raise ValueError(f"final_certificate.votes: signatures are {SIGNATURE_SIZE} bytes")

    @property
    def signers(self) -> tuple[int, ...]:
        return tuple(s for s, _ in self.votes)

    def encode(self) -> bytes:
        head = _HEAD.pack(self.round, self.block_hash, len(self.votes))
        return head + b"".join(_VOTE.pack(s, sig) for s, sig in self.votes)

    def proof(self) -> FinalProof:
        """The `final_proof` message that carries this certificate to a peer."""
        return FinalProof(
            self.round, self.block_hash, b"".join(_VOTE.pack(s, sig) for s, sig in self.votes)
        )

    @classmethod
    def from_proof(cls, proof: FinalProof) -> FinalCertificate:
        return cls(proof.round, proof.block_hash, tuple(_VOTE.iter_unpack(proof.votes)))

    @classmethod
    def decode(cls, raw: bytes) -> FinalCertificate:
        if len(raw) < _HEAD.size:
            raise ValueError(f"final_certificate: {len(raw)} bytes, too short")
        round, block_hash, count = _HEAD.unpack_from(raw)
        if len(raw) != _HEAD.size + count * _VOTE.size:
            raise ValueError(f"final_certificate: {len(raw)} bytes for {count} votes")
        votes = tuple(_VOTE.iter_unpack(raw[_HEAD.size :]))
        return cls(round, block_hash, votes)


class FinalTally:
    """The final votes of one round, by block hash, weighed in its final committee."""

    __slots__ = ("ctx", "decided", "sigs", "tally")

    def __init__(self, ctx: RoundContext) -> None:
        self.ctx = ctx
        self.tally: Tally[bytes] = Tally()
        self.sigs: dict[int, bytes] = {}
        self.decided: FinalCertificate | None = None
        """The certificate, once one block's final weight passed t_f."""

    def add(self, msg: FinalVote) -> bool:
        """Count a verified final vote; False if its sender was counted already (a repeat, or
        a second block: the first one counts). `decided` is set when a block passes t_f."""
        weight = self.ctx.weight(FINAL_STEP, msg.sender)
        if weight == 0 or not self.tally.add(msg.sender, weight, msg.block_hash):
            return False
        self.sigs[msg.sender] = msg.signature
        if self.decided is None:
            final = self.tally.above(self.ctx.params.t_f)
            if final is not None:
                votes = tuple(sorted((s, self.sigs[s]) for s in self.tally.signers(final)))
                self.decided = FinalCertificate(self.ctx.round, final, votes)
        return True


def final_vote_checks(
    msg: FinalVote, ctx: RoundContext, public_key: PublicKeys
) -> str | list[SignatureCheck]:
    """A final vote of the round of `ctx`: its sender's seats in the final committee, then
    its signature (a drop reason, or the check still to make)."""
    if msg.round != ctx.round:
        return "wrong round"
    if ctx.weight(FINAL_STEP, msg.sender) == 0:
        return "not in committee"
    pk = public_key(msg.sender)
    if pk is None:
        return "unknown account"
    return [(pk, msg.signing_bytes(ctx.chain), msg.signature)]


def signatures_hold(
    cert: FinalCertificate,
    chain: bytes,
    public_key: PublicKeys,
    verify_batch: Callable[[Sequence[bytes], Sequence[bytes], Sequence[bytes]], list[bool]],
) -> bool:
    """Whether every vote of `cert` is a valid signature of an existing account: the check
    that needs no committee (so no chain), made before a node rolls back to judge one."""
    keys = [public_key(signer) for signer, _ in cert.votes]
    if not cert.votes or any(pk is None for pk in keys):
        return False
    body = FinalVote(cert.round, FINAL_STEP, 0, cert.block_hash, NO_SIGNATURE).signing_bytes(chain)
    sigs = [sig for _, sig in cert.votes]
    return all(verify_batch(keys, [body] * len(keys), sigs))  # type: ignore[arg-type]


def check_final_certificate(
    cert: FinalCertificate,
    ctx: RoundContext,
    public_key: PublicKeys,
    verify_batch: Callable[[Sequence[bytes], Sequence[bytes], Sequence[bytes]], list[bool]],
) -> None:
    """Raise `FinalityError` unless `cert` proves its block final in the round of `ctx`:
    every signer in the final committee, weight > t_f, every signature valid (one batch)."""
    if cert.round != ctx.round:
        raise FinalityError(f"round: certificate {cert.round}, expected {ctx.round}")
    weight = 0
    keys, payloads, sigs = [], [], []
    payload = FinalVote(cert.round, FINAL_STEP, 0, cert.block_hash, NO_SIGNATURE)
    body = payload.signing_bytes(ctx.chain)
    for signer, signature in cert.votes:
        seats = ctx.weight(FINAL_STEP, signer)
        pk = public_key(signer)
        if seats == 0 or pk is None:
            raise FinalityError(f"votes: signer {signer} is not in the final committee")
        weight += seats
        keys.append(pk)
        payloads.append(body)
        sigs.append(signature)
    if weight <= ctx.params.t_f:
        raise FinalityError(f"votes: weight {weight} is not above t_f = {ctx.params.t_f}")
    answers = verify_batch(keys, payloads, sigs)
    if not all(answers):
        bad = [s for (s, _), ok in zip(cert.votes, answers, strict=True) if not ok]
        raise FinalityError(f"votes: bad signature from {bad}")
