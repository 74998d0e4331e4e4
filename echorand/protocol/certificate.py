"""CERT_r: building and checking certificates, and the fork choice rule.

A certificate is the `cert_sig` votes of one BBA step whose signers' weight
in `A_step` is > t_h, for a value that step's votes decide (docs/protocol.md
§7): `b = 0` with `v` from a step `s` with `s ≡ 1 (mod 3)` (4, 7, 10, ...: the
next step is "coin fixed to 0"), `b = 1` with the round's empty value from a
step with `s ≡ 2 (mod 3)` (5, 8, 11, ...: the next step is "coin fixed to 1").
Votes of other steps decide nothing, so they certify nothing.

Every vote signs `(r, s, b, v)` under the genesis hash (PROTOCOL §5, revision
2): votes of another round, another step or another network never count,
so votes cast at different steps cannot be pooled into a certificate that
no step produced.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from echorand.protocol.committee import RoundContext
from echorand.protocol.seeds import VRF, proof_problem, seed_signing_bytes
from echorand.protocol.tally import Value
from echorand.wire.crypto import Verifier
from echorand.wire.messages import Block, Certificate

PublicKeys = Callable[[int], bytes | None]
"""The public key of an account id, None if there is no such account."""
SignatureCheck = tuple[bytes, bytes, bytes]
"""(public key, signed payload, signature)."""


class CertificateError(ValueError):
    """A certificate that does not prove its block; the message says why."""


class SeedProofError(CertificateError):
    """A proposed block whose seed credential is not of the genesis's kind, or whose VRF
    proof does not verify (`echorand.protocol.seeds`)."""


def decides(step: int, b: int) -> bool:
    """Whether votes for bit `b` in `step` can make a decision (the codec refuses a
    certificate of any other step: this is the rule's Python name and model)."""
    if b == 0:
        return step >= 4 and (step - 4) % 3 == 0
    return step >= 5 and (step - 5) % 3 == 0


def certified_block_matches(cert: Certificate, block: Block, ctx: RoundContext) -> None:
    """Check that `block` is the block `cert` decides, in the round of `ctx`."""
    if block.round != ctx.round or cert.round != ctx.round:
        raise CertificateError(
            f"round: certificate {cert.round}, block {block.round}, expected {ctx.round}"
        )
    if block.prev_hash != ctx.prev_hash:
        raise CertificateError("block: previous hash is not H(B_{r-1})")
    if cert.b == 1:
        if not block.is_empty:
            raise CertificateError("block: the certificate decides the empty block")
        if cert.value != ctx.empty_value:
            raise CertificateError("value: not the empty value of this round on this chain")
    elif block.is_empty or block.hash != cert.block_hash or block.producer != cert.leader:
        raise CertificateError("block: not the block whose value the certificate decides")
    elif ctx.priority(block.producer) is None:
        raise CertificateError(f"block: producer {block.producer} is not in A_1 of the round")


def check_certificate(
    cert: Certificate,
    block: Block,
    ctx: RoundContext,
    public_key: PublicKeys,
    verifier: Verifier,
) -> None:
    """Raise `CertificateError` unless `cert` proves `block` in the round of `ctx`.

    Checked against the sortition of that round: a non-empty block's producer
    is in A_1 (under the proposer policy of the genesis), then the votes
    (`vote_checks`), and every signature verifies (one batch): the votes', and
    a proposed block's own (`block_checks`: the seed credential, which chooses
    Q[r], the block signature and the certificate it carries), exactly as the
    live path checks a `gc_block`. `ctx.previous` must be given when the
    block carries CERT_{r-1}.
    """
    certified_block_matches(cert, block, ctx)
    checks = vote_checks(cert, ctx, public_key)
    votes = len(checks)
    if not block.is_empty:
        checks += block_checks(block, ctx, public_key)
    answers = verifier.verify_batch(*(list(column) for column in zip(*checks, strict=True)))
    if not all(answers[votes:]):
        vrf = ctx.params.seed_mode == VRF
        raise CertificateError(f"block: {_bad_block_signatures(answers[votes:], vrf)}")
    if not all(answers[:votes]):
        names = [*cert.signers, *cert.principals]
        bad = [name for name, ok in zip(names, answers[:votes], strict=True) if not ok]
        raise CertificateError(f"votes: bad signature from {bad}")


def block_checks(
    block: Block, ctx: RoundContext, public_key: PublicKeys, *, carried: bool = True
) -> list[SignatureCheck]:
    """The signatures a proposed block of the round of `ctx` must pass, once its fields
    hold: its producer's seed signature S over Q[r-1] (which chooses Q[r], PROTOCOL §4), its
    block signature, then (unless not `carried`: the live path verifies them in a second
    stage) the votes of the CERT_{r-1} it carries (`carried_checks`). The live path
    (`echorand.core.validate`) and sync (`check_certificate`) ask the same.

    Under a `vrf` genesis the seed credential is a VRF proof, verified here (it is not an
    Ed25519 equation, so it joins no batch): `SeedProofError` when it is not a proof or does
    not verify, and the list starts with the block signature."""
    assert block.producer is not None and block.seed_sig is not None
    assert block.signature is not None
    pk = public_key(block.producer)
    if pk is None:
        raise CertificateError(f"block: producer {block.producer} has no account")
    mode = ctx.params.seed_mode
    problem = proof_problem(mode, pk, ctx.chain, ctx.seed, ctx.round, block.seed_sig)
    if problem is not None:
        raise SeedProofError(f"block: {problem}")
    votes = carried_checks(block, ctx, public_key) if carried else []
    own = (pk, block.signing_bytes(ctx.chain), block.signature)
    if mode == VRF:
        return [own, *votes]
    seed = (pk, seed_signing_bytes(ctx.chain, ctx.seed, ctx.round), block.seed_sig)
    return [seed, own, *votes]


def _bad_block_signatures(answers: Sequence[bool], vrf: bool) -> str:
    names = ("block signature",) if vrf else ("seed signature", "block signature")
    bad = [name for name, ok in zip(names, answers, strict=False) if not ok]
    if not all(answers[len(names) :]):
        bad.append("carried certificate")
    return "bad " + ", ".join(bad)


def vote_checks(
    cert: Certificate, ctx: RoundContext, public_key: PublicKeys
) -> list[SignatureCheck]:
    """The signatures `cert`'s votes still have to pass, once everything else holds.

    The step is one whose votes decide `cert.b`; the signers are distinct (the codec keeps
    them strictly ascending), each holds seats in `A_step` of the round of `ctx`; each
    substitute's signer may speak for its principal there (§16); the weight is > t_h.
    Own votes come first, then the substitutes, in the certificate's order.
    """
    if not decides(cert.step, cert.b):
        raise CertificateError(f"step: votes b={cert.b} of step {cert.step} decide nothing")
    signers = cert.signers
    if len(set(signers)) != len(signers):
        raise CertificateError("votes: repeated signer")
    weights = ctx.weights(cert.step)
    weight = 0
    checks: list[SignatureCheck] = []
    payload = cert.vote_signing_bytes(ctx.chain)
    for signer, signature in cert.votes:
        seats = weights.get(signer, 0)
        pk = public_key(signer)
        if seats == 0 or pk is None:
            raise CertificateError(f"votes: signer {signer} is not in A_{cert.step}")
        weight += seats
        checks.append((pk, payload, signature))
    for principal, signer, mode, signature in cert.substitutes:
        seats = weights.get(principal, 0)
        pk = public_key(signer)
        if seats == 0:
            raise CertificateError(f"votes: principal {principal} is not in A_{cert.step}")
        if pk is None or not ctx.may_substitute(cert.step, principal, signer, mode):
            raise CertificateError(f"votes: {signer} may not speak for {principal} in mode {mode}")
        weight += seats
        checks.append((pk, cert.substitute_signing_bytes(ctx.chain, principal, mode), signature))
    if weight <= ctx.params.t_h:
        raise CertificateError(f"votes: weight {weight} is not above t_h = {ctx.params.t_h}")
    return checks


def carried_checks(block: Block, ctx: RoundContext, public_key: PublicKeys) -> list[SignatureCheck]:
    """The signatures of the CERT_{r-1} a proposed block of the round of `ctx` carries
    (docs/protocol.md §16), once everything else about it holds.

    After a proposed B_{r-1} the block carries a certificate of round r - 1 deciding
    `b = 0` for B_{r-1}'s value, whose votes pass in the sortition of round r - 1
    (`ctx.previous`); after the empty block (or the genesis) it carries none.
    """
    prev_value = None if ctx.prev_producer is None else (ctx.prev_hash, ctx.prev_producer)
    problem = carried_problem(block, ctx.round, prev_value)
    if problem is not None:
        raise CertificateError(f"carried: {problem}")
    cert = block.prev_cert
    if cert is None:
        return []
    if ctx.previous is None:
        raise CertificateError(f"carried: the sortition of round {ctx.round - 1} is not known")
    return vote_checks(cert, ctx.previous, public_key)


def carried_problem(block: Block, round: int, prev_value: Value | None) -> str | None:
    """What is wrong with the certificate block `round` carries, votes aside, or None.

    `prev_value` is `(hash, producer)` of B_{round-1} when it is a proposed block, None
    after the empty block or the genesis. A proposed block after a proposed block carries
    a certificate of round - 1 deciding `b = 0` for that value; every other block none.
    (The ledger and the consensus core both ask this; the core then checks the votes.)
    """
    cert = None if block.is_empty else block.prev_cert
    if block.is_empty or prev_value is None:
        if cert is not None:
            return f"carries a certificate, but block {round - 1} is empty"
        return None
    if cert is None:
        return f"does not carry the certificate of block {round - 1}"
    if cert.round != round - 1 or cert.b != 0 or cert.value != prev_value:
        return (
            f"the certificate it carries is for round {cert.round}, b={cert.b}, value"
            f" ({cert.block_hash.hex()}, {cert.leader}), not the certificate of block {round - 1}"
        )
    return None


# --- fork choice ------------------------------------------------------------------


def chain_key(chain: Sequence[Block]) -> tuple[int, int, bytes, bytes]:
    """What fork choice compares (larger is preferred), for chains from a common block.

    1. more non-empty blocks; 2. then the later last non-empty block (the
    shorter run of empty blocks at the tip); 3. then the smaller hash of that
    block; 4. then the smaller hash of the first block (chains from a common
    block differ there, so two nodes always pick the same chain).
    """
    non_empty = [i for i, block in enumerate(chain) if not block.is_empty]
    first = _inverted(chain[0].hash) if chain else b""
    if not non_empty:
        return (0, -len(chain), b"", first)
    last = non_empty[-1]
    return (len(non_empty), last - len(chain), _inverted(chain[last].hash), first)


def _inverted(digest: bytes) -> bytes:
    """Orders like the digest, reversed: the smaller hash gives the larger key."""
    return bytes(255 - x for x in digest)


def choose_chain(chains: Sequence[Sequence[Block]]) -> int:
    """The index of the chain fork choice follows (the first one on a complete tie)."""
    if not chains:
        raise ValueError("no chains to choose from")
    keys = [chain_key(chain) for chain in chains]
    return max(range(len(chains)), key=lambda i: (keys[i], -i))
