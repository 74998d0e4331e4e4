"""CERT_{r-1} in the blocks of round r (docs/protocol.md §16): what the node's producers put
in, and which carried certificates a block may have to be counted."""

from __future__ import annotations

from _sandbox import CHAIN, PARAMS, Sandbox, key
from test_round import certificate_for

from echorand.core.events import Commit, Relay, Send
from echorand.core.round import Round
from echorand.protocol.certificate import CertificateError, carried_checks
from echorand.protocol.signing import sign_vote
from echorand.wire.messages import NO_LEADER, Block, Certificate, GcBlock


def after_proposed_block(local: tuple[int, ...] = (0,)) -> tuple[Sandbox, Block, Certificate]:
    """A sandbox node in round 2, after committing a remote producer's block of round 1."""
    sb = Sandbox(local)
    sb.take()
    block = sb.block(sb.best_remote_producer())
    cert = certificate_for(sb, block)
    sb.certified((block, cert))
    assert Commit(block, cert) in sb.take()
    return sb, block, cert


def other_certificate(sb: Sandbox, block: Block, step: int = 7) -> Certificate:
    """Another valid CERT_1 for `block`: the votes of a later deciding step (b = 0)."""
    ctx = sb.ctx.previous
    assert ctx is not None
    weights = sorted(ctx.weights(step).items())
    signers, weight = [], 0
    for account, seats in weights:
        if weight > PARAMS.t_h:
            break
        signers.append(account)
        weight += seats
    value = (block.hash, block.producer)
    votes = [sign_vote(key(a), CHAIN, 1, step, a, 0, value) for a in signers]
    return Certificate(
        1, step, 0, block.hash, block.producer, [(v.sender, v.cert_sig) for v in votes]
    )


def dropped(sb: Sandbox, reason: str) -> int:
    return sb.node.stats[reason]


def test_the_next_round_carries_the_certificate_the_node_committed_with() -> None:
    sb, block, cert = after_proposed_block()
    ctx = sb.ctx
    assert ctx.round == 2 and ctx.prev_producer == block.producer and ctx.carried == cert
    assert ctx.previous is not None and ctx.previous.round == 1
    assert sb.node.tip.certificate == cert and sb.node.tip.producer == block.producer


def test_a_local_producer_puts_the_certificate_in_its_block() -> None:
    sb, _, cert = after_proposed_block()
    everyone = {a: key(a) for a in range(16)}
    rnd = Round(sb.ctx, everyone, 0, lambda r: ())
    rnd.start()
    blocks = [a.message.block for a in rnd.drain() if isinstance(a, Send | Relay)
              and isinstance(a.message, GcBlock)]  # fmt: skip
    assert len(blocks) == 1 and blocks[0].prev_cert == cert


def test_without_the_certificate_a_node_proposes_nothing() -> None:
    sb, _, _ = after_proposed_block()
    ctx = sb.ctx
    ctx.carried = None  # as a node that lost CERT_{r-1} would be
    rnd = Round(ctx, {a: key(a) for a in range(16)}, 0, lambda r: ())
    rnd.start()
    assert not [a for a in rnd.drain() if isinstance(a, Send)]


def test_a_block_carrying_another_valid_certificate_is_accepted() -> None:
    sb, block, cert = after_proposed_block()
    other = other_certificate(sb, block)
    assert other != cert
    accepted = sb.node.stats["accepted"]
    sb.recv(sb.gc_block(sb.block(sb.best_remote_producer(), prev_cert=other)))
    assert sb.node.stats["accepted"] == accepted + 1


def test_a_block_without_the_certificate_is_dropped() -> None:
    sb, _, _ = after_proposed_block()
    sb.recv(sb.gc_block(sb.block(sb.best_remote_producer(), prev_cert=None)))
    assert dropped(sb, "bad carried certificate") == 1 and sb.node.stats["accepted"] == 0


def test_a_carried_certificate_with_a_forged_vote_is_dropped() -> None:
    sb, _, cert = after_proposed_block()
    (signer, sig), *rest = cert.votes
    forged = bytes([sig[0] ^ 1]) + sig[1:]
    bad = Certificate(1, cert.step, 0, cert.block_hash, cert.leader, [(signer, forged), *rest])
    sb.recv(sb.gc_block(sb.block(sb.best_remote_producer(), prev_cert=bad)))
    assert dropped(sb, "bad signature") == 1 and sb.node.stats["accepted"] == 0


def test_carried_certificates_are_checked_against_the_previous_round() -> None:
    sb, _, cert = after_proposed_block()
    ctx = sb.ctx
    assert ctx.previous is not None

    def reason(carried: Certificate) -> str:
        probe = sb.block(sb.best_remote_producer(), prev_cert=carried)
        try:
            carried_checks(probe, ctx, sb.ledger.public_key)
        except CertificateError as e:
            return str(e)
        return "ok"

    assert reason(cert) == "ok"
    light = Certificate(1, cert.step, 0, cert.block_hash, cert.leader, cert.votes[1:])
    assert reason(light).startswith("votes: weight")
    wrong_value = Certificate(1, cert.step, 0, bytes(31) + b"\x01", cert.leader, cert.votes)
    assert "not the certificate of block 1" in reason(wrong_value)
    empty = Certificate(1, 5, 1, ctx.previous.empty_value[0], NO_LEADER, cert.votes)
    assert "not the certificate of block 1" in reason(empty)


def test_after_the_empty_block_nothing_is_carried() -> None:
    sb = Sandbox()
    sb.take()
    empty = Block.empty(1, sb.ctx.prev_hash)
    empty_cert = certificate_for(sb, empty, step=5)
    sb.certified((empty, empty_cert))
    ctx = sb.ctx
    assert ctx.round == 2 and ctx.prev_producer is None and ctx.carried is None
    sb.recv(sb.gc_block(sb.block(sb.best_remote_producer(), prev_cert=empty_cert)))
    assert dropped(sb, "bad carried certificate") == 1
    sb.recv(sb.gc_block(sb.block(sb.best_remote_producer())))
    assert sb.node.stats["accepted"] == 1


def test_only_one_round_of_contexts_is_kept() -> None:
    sb = after_proposed_block()[0]
    for _ in range(3):
        producer = sb.best_remote_producer()
        nxt = sb.block(producer)
        sb.certified((nxt, certificate_for(sb, nxt)))
        assert sb.ctx.previous is not None and sb.ctx.previous.previous is None
