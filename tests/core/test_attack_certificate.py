"""Every refusal branch of the certificate check, reached by a forged certificate (or block)
that a corrupt sync peer could serve.

Each case is checked twice: by `check_certificate`, for the exact reason, and through the
consensus core (`CertifiedBlocksReceived` in the sandbox: the path of a synced block at a
node that has joined), which must refuse it, count it and commit nothing. Two branches
guard what the codec already refuses to build (a certificate whose step decides nothing
for its bit, a repeated signer): a plain record with the same fields reaches them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from _sandbox import CHAIN, PARAMS, Sandbox, decided, key

from echorand.core.events import Commit
from echorand.protocol.certificate import CertificateError, PublicKeys, check_certificate
from echorand.protocol.committee import RoundContext
from echorand.protocol.signing import sign_block
from echorand.wire.messages import Block, Certificate


@dataclass
class Case:
    """A certificate and block to check, against `ctx` with `public_key`."""

    sb: Sandbox
    cert: object
    block: Block
    ctx: RoundContext
    public_key: PublicKeys = field(default=lambda _: None)


def changed(cert: Certificate, **fields: object) -> Certificate:
    """`cert` with some fields changed (votes and substitutes kept unless given)."""
    base: dict[str, object] = {
        "round": cert.round,
        "step": cert.step,
        "b": cert.b,
        "block_hash": cert.block_hash,
        "leader": cert.leader,
        "votes": list(cert.votes),
        "substitutes": list(cert.substitutes),
    }
    return Certificate(**(base | fields))


def flipped(sig: bytes) -> bytes:
    return bytes([sig[0] ^ 1]) + sig[1:]


def resigned(block: Block, **fields: object) -> Block:
    """`block` with some of its fields changed, not signed again."""
    base: dict[str, object] = {
        "round": block.round,
        "prev_hash": block.prev_hash,
        "producer": block.producer,
        "seed_sig": block.seed_sig,
        "transactions": list(block.transactions),
        "signature": block.signature,
        "prev_cert": block.prev_cert,
    }
    return Block(**(base | fields))


@dataclass(frozen=True)
class RawCertificate:
    """A certificate's fields without the codec's rules (which refuse these cases)."""

    round: int
    step: int
    b: int
    block_hash: bytes
    leader: int
    votes: tuple[tuple[int, bytes], ...]
    substitutes: tuple = ()

    @property
    def value(self) -> tuple[bytes, int]:
        return (self.block_hash, self.leader)

    @property
    def signers(self) -> tuple[int, ...]:
        return tuple(s for s, _ in self.votes)

    def vote_signing_bytes(self, chain: bytes) -> bytes:
        return Certificate(self.round, 4, 0, self.block_hash, self.leader, []).vote_signing_bytes(
            chain
        )


def raw(cert: Certificate, **fields: object) -> RawCertificate:
    base = {
        "round": cert.round,
        "step": cert.step,
        "b": cert.b,
        "block_hash": cert.block_hash,
        "leader": cert.leader,
        "votes": tuple(cert.votes),
    }
    return RawCertificate(**(base | fields))  # type: ignore[arg-type]


def _keys(sb: Sandbox) -> PublicKeys:
    return sb.ledger.public_key


def round_mismatch() -> Case:
    sb, block, cert, ctx = decided()
    return Case(sb, changed(cert, round=2), block, ctx, _keys(sb))


def another_previous_block() -> Case:
    sb, _, cert, ctx = decided(1)
    return Case(sb, cert, Block.empty(1, bytes(31) + b"\x01"), ctx, _keys(sb))


def empty_certificate_for_a_proposed_block() -> Case:
    sb, _, cert, ctx = decided(1)
    proposed, *_ = decided(0)[1:2]
    return Case(sb, cert, proposed, ctx, _keys(sb))


def empty_value_of_another_fork() -> Case:
    sb, block, cert, ctx = decided(1)
    return Case(sb, changed(cert, block_hash=Block.empty(1, bytes(32)).hash), block, ctx, _keys(sb))


def another_block() -> Case:
    sb, block, cert, ctx = decided()
    return Case(sb, cert, Block.empty(1, block.prev_hash), ctx, _keys(sb))


def producer_outside_a1() -> Case:
    sb, _, cert, ctx = decided()
    outsider = min(a for a in range(16) if ctx.priority(a) is None)
    block = sign_block(key(outsider), CHAIN, 1, ctx.prev_hash, outsider, ctx.seed, (), None)
    return Case(sb, changed(cert, block_hash=block.hash, leader=outsider), block, ctx, _keys(sb))


def producer_without_account() -> Case:
    sb, block, cert, ctx = decided()
    keys = _keys(sb)
    return Case(sb, cert, block, ctx, lambda a: None if a == block.producer else keys(a))


def bad_block_signature() -> Case:
    sb, block, cert, ctx = decided()
    assert block.signature is not None
    return Case(sb, cert, resigned(block, signature=flipped(block.signature)), ctx, _keys(sb))


def bad_seed_signature() -> Case:
    sb, block, cert, ctx = decided()
    assert block.seed_sig is not None
    forged = resigned(block, seed_sig=flipped(block.seed_sig))
    return Case(sb, changed(cert, block_hash=forged.hash), forged, ctx, _keys(sb))


def bad_vote_signature() -> Case:
    sb, block, cert, ctx = decided()
    (signer, sig), *rest = cert.votes
    return Case(sb, changed(cert, votes=[(signer, flipped(sig)), *rest]), block, ctx, _keys(sb))


def step_deciding_nothing() -> Case:
    sb, block, cert, ctx = decided()
    return Case(sb, raw(cert, step=5), block, ctx, _keys(sb))


def repeated_signer() -> Case:
    sb, block, cert, ctx = decided()
    votes = (cert.votes[0], *cert.votes)
    return Case(sb, raw(cert, votes=votes), block, ctx, _keys(sb))


def signer_outside_the_committee() -> Case:
    sb, block, cert, ctx = decided()
    outsider = min(a for a in range(16) if a not in ctx.weights(4))
    sig = key(outsider).sign(cert.vote_signing_bytes(CHAIN))
    votes = sorted([*cert.votes, (outsider, sig)])
    return Case(sb, changed(cert, votes=votes), block, ctx, _keys(sb))


def principal_outside_the_committee() -> Case:
    sb, block, cert, ctx = decided()
    outsider = min(a for a in range(16) if a not in ctx.weights(4))
    signer = cert.votes[0][0]
    subs = [(outsider, signer, 1, bytes(64))]
    return Case(sb, changed(cert, substitutes=subs), block, ctx, _keys(sb))


def signer_not_a_delegate() -> Case:
    sb, block, cert, ctx = decided()
    principal = min(a for a in ctx.weights(4) if a not in cert.signers)
    signer = cert.votes[0][0]
    subs = [(principal, signer, 1, bytes(64))]
    return Case(sb, changed(cert, substitutes=subs), block, ctx, _keys(sb))


def weight_not_above_t_h() -> Case:
    sb, block, cert, ctx = decided()
    return Case(sb, changed(cert, votes=list(cert.votes[1:])), block, ctx, _keys(sb))


def _round_two() -> tuple[Sandbox, Certificate, RoundContext]:
    """A sandbox in round 2 after the proposed block of round 1, with CERT_1."""
    sb, _, cert, _ = decided()
    return sb, cert, sb.ctx


def _certifying(sb: Sandbox, block: Block) -> Certificate:
    """A certificate of step 4 for `block` with enough weight (the block is checked first)."""
    assert block.producer is not None
    value = (block.hash, block.producer)
    votes = sb.votes(4, 0, value, sb.signers(4, PARAMS.t_h + 1))
    return Certificate(block.round, 4, 0, *value, sorted((v.sender, v.cert_sig) for v in votes))


def carried_certificate_missing() -> Case:
    sb, _, ctx = _round_two()
    block = sb.block(sb.best_remote_producer(), prev_cert=None)
    return Case(sb, _certifying(sb, block), block, ctx, _keys(sb))


def carried_sortition_unknown() -> Case:
    sb, _, ctx = _round_two()
    block = sb.block(sb.best_remote_producer())
    ctx.previous = None
    return Case(sb, _certifying(sb, block), block, ctx, _keys(sb))


def carried_certificate_forged() -> Case:
    sb, cert1, ctx = _round_two()
    (signer, sig), *rest = cert1.votes
    forged = changed(cert1, votes=[(signer, flipped(sig)), *rest])
    block = sb.block(sb.best_remote_producer(), prev_cert=forged)
    return Case(sb, _certifying(sb, block), block, ctx, _keys(sb))


CASES: dict[str, tuple[Callable[[], Case], str]] = {
    "round": (round_mismatch, "round: certificate 2, block 1, expected 1"),
    "previous block": (another_previous_block, r"previous hash is not H\(B_\{r-1\}\)"),
    "b = 1 for a proposed block": (
        empty_certificate_for_a_proposed_block,
        "the certificate decides the empty block",
    ),
    "empty value of another fork": (empty_value_of_another_fork, "not the empty value"),
    "another block": (another_block, "not the block whose value the certificate decides"),
    "producer outside A_1": (producer_outside_a1, "is not in A_1 of the round"),
    "producer without an account": (producer_without_account, "has no account"),
    "bad block signature": (bad_block_signature, "block: bad block signature"),
    "bad seed signature": (bad_seed_signature, "block: bad seed signature"),
    "bad vote signature": (bad_vote_signature, r"votes: bad signature from \["),
    "step deciding nothing": (step_deciding_nothing, "decide nothing"),
    "repeated signer": (repeated_signer, "repeated signer"),
    "signer outside the committee": (signer_outside_the_committee, "is not in A_4"),
    "principal outside the committee": (
        principal_outside_the_committee,
        r"principal \d+ is not in A_4",
    ),
    "signer not a delegate": (signer_not_a_delegate, "may not speak for"),
    "weight": (weight_not_above_t_h, "is not above t_h"),
    "carried certificate missing": (
        carried_certificate_missing,
        "carried: does not carry the certificate of block 1",
    ),
    "carried sortition unknown": (carried_sortition_unknown, "sortition of round 1 is not known"),
    "carried certificate forged": (carried_certificate_forged, "bad carried certificate"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_every_refusal_branch_of_the_certificate_check(name: str) -> None:
    make, reason = CASES[name]
    case = make()
    with pytest.raises(CertificateError, match=reason):
        check_certificate(case.cert, case.block, case.ctx, case.public_key, case.sb.verifier)  # type: ignore[arg-type]
    if not isinstance(case.cert, Certificate) or name == "producer without an account":
        return  # not something a peer can send; not the node's own key table
    # Through the core, as a synced block: refused, counted, nothing committed (a round-1
    # case against a fresh sandbox, which is the same world before its first decision).
    sb = case.sb
    if case.ctx.round != sb.node.current_round:
        sb = Sandbox()
        sb.take()
    if name == "carried sortition unknown":
        return  # the core always has it
    assert case.ctx.round == sb.node.current_round
    tip, before = sb.node.tip, sb.node.stats["bad certificate"]
    sb.certified((case.block, case.cert))
    assert not [a for a in sb.take() if isinstance(a, Commit)]
    assert sb.node.tip == tip and sb.node.stats["bad certificate"] == before + 1
