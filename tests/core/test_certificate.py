"""Certificates: built from the deciding step, checked against that round's sortition;
the fork choice rule."""

from __future__ import annotations

import pytest
from _chain import pattern_chain
from _sandbox import CHAIN, PARAMS, Sandbox, decided, key
from test_round import certificate_for

from echorand.core.events import Commit, FetchBlock, ForkEvidence
from echorand.protocol.certificate import CertificateError, check_certificate, choose_chain, decides
from echorand.protocol.params import FINAL_STEP
from echorand.protocol.signing import sign_vote
from echorand.wire.messages import Block, Certificate, DecodeError


def check(sb: Sandbox, cert: Certificate, block: Block) -> None:
    check_certificate(cert, block, sb.round1, sb.ledger.public_key, sb.verifier)  # type: ignore[attr-defined]


@pytest.mark.parametrize("b", [0, 1])
def test_built_certificate_verifies(b: int) -> None:
    sb, block, cert, _ = decided(b)
    check(sb, cert, block)


def with_votes(cert: Certificate, votes: list[tuple[int, bytes]], **changes: int) -> Certificate:
    fields = {
        "round": cert.round,
        "step": cert.step,
        "b": cert.b,
        "block_hash": cert.block_hash,
        "leader": cert.leader,
    }
    fields.update(changes)
    return Certificate(votes=sorted(votes), **fields)


def test_too_little_weight_is_refused() -> None:
    sb, block, cert, _ = decided()
    with pytest.raises(CertificateError, match="not above t_h"):
        check(sb, with_votes(cert, list(cert.votes[1:])), block)


def test_signer_outside_the_committee_is_refused() -> None:
    sb, block, cert, _ = decided()
    outsider = min(a for a in range(16) if a not in sb.round1.weights(4))  # type: ignore[attr-defined]
    sig = key(outsider).sign(cert.vote_signing_bytes(CHAIN))
    with pytest.raises(CertificateError, match="not in A_4"):
        check(sb, with_votes(cert, [*cert.votes, (outsider, sig)]), block)


def test_bad_signature_is_refused() -> None:
    sb, block, cert, _ = decided()
    votes = list(cert.votes)
    votes[0] = (votes[0][0], votes[1][1])
    with pytest.raises(CertificateError, match="bad signature"):
        check(sb, with_votes(cert, votes), block)


def test_certificate_of_another_round_is_refused() -> None:
    sb, block, cert, _ = decided()
    with pytest.raises(CertificateError, match="round"):
        check(sb, with_votes(cert, list(cert.votes), round=2), block)


def test_a_certificate_whose_step_decides_nothing_for_its_bit_is_malformed() -> None:
    _, _, cert, _ = decided()
    assert not decides(5, 0) and not decides(4, 1) and not decides(FINAL_STEP, 0)
    # b = 0 votes of step 5 (or b = 1 of step 4) decide nothing: the codec refuses them
    with pytest.raises(ValueError, match="decide nothing"):
        with_votes(cert, list(cert.votes), step=5)
    raw = bytearray(cert.encode())
    raw[8:12] = (5).to_bytes(4, "big")
    with pytest.raises(DecodeError, match=r"certificate\.step"):
        Certificate.from_bytes(bytes(raw))


@pytest.mark.parametrize("step", [8, 300_000_002])
def test_votes_relabelled_as_another_step_are_refused(step: int) -> None:
    # The attack of PROTOCOL revision 2: b = 1 votes honest accounts cast at step 5, relabelled
    # as the certificate of another b = 1 step (whose committee, past max_step, is one of the
    # bounded set). The votes sign their step, so none verifies at another.
    sb, block, _, _ = decided(1)
    ctx = sb.round1  # type: ignore[attr-defined]
    target = ctx.weights(step)
    both = sorted(a for a in ctx.weights(5) if a in target)
    assert sum(target[a] for a in both) > PARAMS.t_h, "precondition: A_5 ∩ A_step passes t_h"

    def certificate(cast_at: int) -> Certificate:
        votes = [sign_vote(key(a), CHAIN, 1, cast_at, a, 1, ctx.empty_value) for a in both]
        return Certificate(1, step, 1, *ctx.empty_value, [(v.sender, v.cert_sig) for v in votes])

    check(sb, certificate(step), block)  # the same signers, voting at that step: valid
    with pytest.raises(CertificateError, match="bad signature"):
        check(sb, certificate(5), block)


def test_an_empty_block_certificate_of_another_fork_is_refused() -> None:
    # The empty value is H(B_ε) of the round on its H(B_{r-1}): b = 1 votes of one fork
    # certify nothing on another, even for the same round.
    sb, block, cert, _ = decided(1)
    other_fork = Block.empty(1, bytes(31) + b"\x01")
    foreign = with_votes(cert, list(cert.votes), block_hash=other_fork.hash)
    with pytest.raises(CertificateError, match="empty value"):
        check(sb, foreign, block)


def test_past_max_step_committees_repeat_with_the_step_class() -> None:
    p = PARAMS
    assert p.max_step == 4 + 6 * p.k
    assert [p.committee_step(s) for s in (4, p.max_step, p.max_step + 1)] == [4, p.max_step, 5]
    for s in range(5, 10 * p.max_step):
        mapped = p.committee_step(s)
        assert 5 <= mapped <= p.max_step or s <= p.max_step
        assert mapped % 3 == s % 3
    assert p.committee_step(FINAL_STEP) == FINAL_STEP


def test_certificate_for_another_block_is_refused() -> None:
    sb, block, cert, _ = decided()
    with pytest.raises(CertificateError, match="block"):
        check(sb, cert, Block.empty(1, block.prev_hash))
    sb1, _, cert1, _ = decided(1)
    with pytest.raises(CertificateError, match="empty block"):
        check(sb1, cert1, block)


# --- fork choice --------------------------------------------------------------------------------


def blocks(pattern: str) -> list[Block]:
    """'.' an empty block, a letter a signed proposed block (`_chain.pattern_chain`)."""
    return [block for block, _ in pattern_chain(pattern, chain=CHAIN)]


def test_more_non_empty_blocks_win() -> None:
    assert choose_chain([blocks("a.a."), blocks("aaa")]) == 1


def test_then_the_chain_with_a_non_empty_tip() -> None:
    assert choose_chain([blocks("aa."), blocks(".aa")]) == 1


def test_then_the_smaller_hash_at_the_last_non_empty_block() -> None:
    one, two = blocks("ab"), blocks("ac")
    expected = 0 if one[-1].hash < two[-1].hash else 1
    assert choose_chain([one, two]) == expected


# --- sync never overrides a decision (PROTOCOL §6) ------------------------------------------


def test_a_synced_block_with_a_wrong_seed_signature_is_refused_even_with_votes() -> None:
    # votes signed for the block's hash (the adversary holds the keys here) cannot make a block
    # whose seed signature is not its producer's over Q[r-1] acceptable: it would choose Q[r]
    sb = Sandbox()
    sb.take()
    producer = sb.best_remote_producer()
    good = sb.block(producer)
    ctx = sb.ctx
    forged_seed = key(producer).sign(b"not the seed payload")
    fields = (1, ctx.prev_hash, producer, forged_seed, ())
    draft = Block(*fields, bytes(64))
    bad = Block(*fields, key(producer).sign(draft.signing_bytes(CHAIN)))
    assert bad.hash != good.hash
    value = (bad.hash, producer)
    signers = sb.signers(4, PARAMS.t_h + 1)
    votes = [sign_vote(key(a), CHAIN, 1, 4, a, 0, value) for a in signers]
    cert = Certificate(1, 4, 0, *value, [(v.sender, v.cert_sig) for v in votes])
    with pytest.raises(CertificateError, match="bad seed signature"):
        check_certificate(cert, bad, ctx, sb.ledger.public_key, sb.verifier)
    sb.certified((bad, cert))
    assert sb.take() == [] and sb.node.stats["bad certificate"] == 1
    assert sb.node.current_round == 1


def test_a_synced_certificate_against_the_decision_is_fork_evidence_not_a_commit() -> None:
    sb = Sandbox()
    sb.take()
    block = sb.block(sb.best_remote_producer())
    value = (block.hash, block.producer)
    # the node decides `block` from step-4 votes but does not hold it: it fetches it
    sb.recv(*sb.votes(4, 0, value, sb.signers(4, PARAMS.t_h + 1)))
    assert [a for a in sb.take() if isinstance(a, FetchBlock)] == [FetchBlock(1, block.hash)]
    ours = sb.node.round.certificate()  # type: ignore[union-attr]
    # a valid certificate for the empty block of the same round arrives by sync
    empty = Block.empty(1, sb.ctx.prev_hash)
    signers = sorted(sb.remote(5))
    votes = [sign_vote(key(a), CHAIN, 1, 5, a, 1, sb.empty) for a in signers]
    theirs = Certificate(1, 5, 1, *sb.empty, [(v.sender, v.cert_sig) for v in votes])
    check_certificate(theirs, empty, sb.ctx, sb.ledger.public_key, sb.verifier)  # valid
    sb.certified((empty, theirs))
    assert sb.take() == [ForkEvidence(1, ours, theirs, empty)]
    assert sb.node.current_round == 1 and sb.node.stats["fork evidence"] == 1
    # the decided block, when it comes with its own certificate, is committed
    sb.certified((block, certificate_for(sb, block)))
    commits = [a for a in sb.take() if isinstance(a, Commit)]
    assert [c.block for c in commits] == [block] and commits[0].certificate == ours
