"""Certificates: built from the deciding step, checked against that round's sortition;
the fork choice rule."""

from __future__ import annotations

import pytest
from _sandbox import EMPTY_VALUE, PARAMS, Sandbox, key

from echorand.certificate import CertificateError, check_certificate, choose_chain
from echorand.events import Commit
from echorand.messages import Block, Certificate


def decided(b: int = 0) -> tuple[Sandbox, Block, Certificate]:
    sb = Sandbox()
    sb.take()
    ctx = sb.ctx
    if b == 0:
        block = sb.block(sb.best_remote_producer())
        sb.recv(sb.gc_block(block))
        msgs = sb.votes(4, 0, (block.hash, block.producer), sb.signers(4, PARAMS.t_h + 1))
    else:
        block = Block.empty(1, ctx.prev_hash)
        msgs = sb.votes(5, 1, EMPTY_VALUE, sb.signers(5, PARAMS.t_h + 1))
    sb.recv(*msgs)
    commit = next(a for a in sb.take() if isinstance(a, Commit))
    assert commit.block == block
    sb.round1 = ctx  # type: ignore[attr-defined]
    return sb, block, commit.certificate


def check(sb: Sandbox, cert: Certificate, block: Block) -> None:
    check_certificate(cert, block, sb.round1, sb.ledger.public_key, sb.verifier)  # type: ignore[attr-defined]


@pytest.mark.parametrize("b", [0, 1])
def test_built_certificate_verifies(b: int) -> None:
    sb, block, cert = decided(b)
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
    sb, block, cert = decided()
    with pytest.raises(CertificateError, match="not above t_h"):
        check(sb, with_votes(cert, list(cert.votes[1:])), block)


def test_signer_outside_the_committee_is_refused() -> None:
    sb, block, cert = decided()
    outsider = min(a for a in range(16) if a not in sb.round1.weights(4))  # type: ignore[attr-defined]
    sig = key(outsider).sign(cert.vote_signing_bytes())
    with pytest.raises(CertificateError, match="not in A_4"):
        check(sb, with_votes(cert, [*cert.votes, (outsider, sig)]), block)


def test_bad_signature_is_refused() -> None:
    sb, block, cert = decided()
    votes = list(cert.votes)
    votes[0] = (votes[0][0], votes[1][1])
    with pytest.raises(CertificateError, match="bad signature"):
        check(sb, with_votes(cert, votes), block)


def test_certificate_of_another_round_is_refused() -> None:
    sb, block, cert = decided()
    with pytest.raises(CertificateError, match="round"):
        check(sb, with_votes(cert, list(cert.votes), round=2), block)


def test_votes_of_a_step_that_decides_nothing_are_refused() -> None:
    sb, block, cert = decided()
    # the same signatures claimed for step 5, where b = 0 votes decide nothing
    with pytest.raises(CertificateError, match="decide nothing"):
        check(sb, with_votes(cert, list(cert.votes), step=5), block)


def test_certificate_for_another_block_is_refused() -> None:
    sb, block, cert = decided()
    with pytest.raises(CertificateError, match="block"):
        check(sb, cert, Block.empty(1, block.prev_hash))
    sb1, _, cert1 = decided(1)
    with pytest.raises(CertificateError, match="empty block"):
        check(sb1, cert1, block)


# --- fork choice --------------------------------------------------------------------------------


def blocks(pattern: str, prev: bytes = bytes(32)) -> list[Block]:
    """'x' a non-empty block (a distinct hash per position and letter), '.' an empty block."""
    from echorand.signing import sign_block

    chain: list[Block] = []
    for r, c in enumerate(pattern, start=1):
        if c == ".":
            chain.append(Block.empty(r, prev))
        else:
            producer = ord(c) - ord("a")
            chain.append(sign_block(key(producer), r, prev, producer, bytes(32), ()))
        prev = chain[-1].hash
    return chain


def test_more_non_empty_blocks_win() -> None:
    assert choose_chain([blocks("a.a."), blocks("aaa")]) == 1


def test_then_the_chain_with_a_non_empty_tip() -> None:
    assert choose_chain([blocks("aa."), blocks(".aa")]) == 1


def test_then_the_smaller_hash_at_the_last_non_empty_block() -> None:
    one, two = blocks("ab"), blocks("ac")
    expected = 0 if one[-1].hash < two[-1].hash else 1
    assert choose_chain([one, two]) == expected
