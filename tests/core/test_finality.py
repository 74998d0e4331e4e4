"""Final and tentative blocks (PROTOCOL §6): who sends final votes, when a block is final,
and what a node does when a certificate contradicts a final block."""

from __future__ import annotations

import pytest
from _sandbox import CHAIN, PARAMS, Sandbox, key
from test_round import certificate_for

from echorand.core.events import (
    Commit,
    FetchBlock,
    Finalized,
    ForkEvidence,
    Halted,
    Send,
    SuspectFork,
)
from echorand.core.signed import Signed, SignedLog
from echorand.protocol.finality import (
    FinalCertificate,
    FinalityError,
    FinalTally,
    check_final_certificate,
)
from echorand.protocol.signing import sign_block, sign_final, sign_vote
from echorand.wire.messages import FINAL_STEP, Block, Certificate, FinalVote

T_F = PARAMS.t_f


def finals_of(actions: list) -> list[FinalVote]:
    return [a.message for a in actions if isinstance(a, Send) and isinstance(a.message, FinalVote)]


def decide_block(sb: Sandbox) -> Block:
    """The node decides a remote producer's block from step-4 votes and commits it."""
    block = sb.block(sb.best_remote_producer())
    sb.recv(sb.gc_block(block))
    sb.recv(*sb.votes(4, 0, (block.hash, block.producer), sb.signers(4, PARAMS.t_h + 1)))
    return block


def final_signers(sb: Sandbox, ctx, weight: int) -> list[int]:
    """Remote accounts of the final committee of `ctx` whose seats add up to at least
    `weight`, in id order."""
    chosen, total = [], 0
    for account, seats in sorted(ctx.weights(FINAL_STEP).items()):
        if account in sb.keys:
            continue
        if total >= weight:
            break
        chosen.append(account)
        total += seats
    assert total >= weight, "precondition: enough remote final weight"
    return chosen


def exact_signers(sb: Sandbox, ctx, weight: int) -> list[int]:
    """Remote accounts of the final committee of `ctx` whose seats add up to exactly
    `weight` (greedily, in id order, skipping any that would pass it)."""
    chosen, total = [], 0
    for account, seats in sorted(ctx.weights(FINAL_STEP).items()):
        if account not in sb.keys and total + seats <= weight:
            chosen.append(account)
            total += seats
    assert total == weight, "precondition: remote final seats adding up to the weight"
    return chosen


def test_deciding_from_step_4_votes_before_any_later_vote_sends_final_votes() -> None:
    sb = Sandbox()
    sb.take()
    expected = sb.my_finals(sb.block(sb.best_remote_producer()).hash)
    assert expected, "precondition: the local account holds seats in the final committee"
    block = decide_block(sb)
    sent = finals_of(sb.take())
    assert sent == [f.message for f in expected]
    assert all(m.block_hash == block.hash and m.round == 1 for m in sent)


def test_a_decided_block_is_final_voted_only_once_the_node_holds_it() -> None:
    """Votes name a block by its hash: they can decide a block of another fork, which the
    node must not make final. It final-votes the block when the block comes (on its chain)."""
    sb = Sandbox()
    sb.take()
    block = sb.block(sb.best_remote_producer())
    value = (block.hash, block.producer)
    sb.recv(*sb.votes(4, 0, value, sb.signers(4, PARAMS.t_h + 1)))
    actions = sb.take()
    assert sb.node.round.decision is not None and sb.node.round.ctx.round == 1
    assert any(isinstance(a, FetchBlock) for a in actions)
    assert finals_of(actions) == []
    sb.recv(sb.gc_block(block))
    assert finals_of(sb.take()) == [f.message for f in sb.my_finals(block.hash)]


def test_a_decided_block_of_another_chain_is_never_committed_nor_final_voted() -> None:
    """Votes from the other side of a fork decide its block here: when it comes, it does not
    extend our tip, so the core asks to compare chains and marks the round stuck there (the
    executor restarts it if the fork choice keeps our chain)."""
    sb = Sandbox()
    sb.take()
    producer = sb.best_remote_producer()
    block = sign_block(
        key(producer), CHAIN, 1, b"\x07" * 32, producer, sb.ctx.seed, (), None
    )  # round 1 on another H(B_0)
    value = (block.hash, block.producer)
    sb.recv(*sb.votes(4, 0, value, sb.signers(4, PARAMS.t_h + 1)))
    assert any(isinstance(a, FetchBlock) for a in sb.take())
    assert sb.node.decided_elsewhere is False
    sb.block_received(block)
    actions = sb.take()
    assert SuspectFork(1, block.hash) in actions
    assert not [a for a in actions if isinstance(a, Commit)] and finals_of(actions) == []
    assert sb.node.decided_elsewhere and sb.node.stats["decided block of another chain"] == 1


def test_a_node_that_voted_in_a_later_step_sends_no_final_vote() -> None:
    sb = Sandbox()
    own = sb.take()[0].message.block
    # nobody else speaks: the node runs to step 5 on its timers and votes there
    for _ in range(6):
        sb.add_time(PARAMS.lam_ms + PARAMS.big_lam_ms)
    sb.take()
    assert sb.node.round is not None and sb.node.round.step >= 6
    # now step-4 votes for a block arrive: it decides from them, but it voted since
    value = (own.hash, own.producer)
    sb.recv(*sb.votes(4, 0, value, sb.signers(4, PARAMS.t_h + 1)))
    actions = sb.take()
    assert any(isinstance(a, Commit) for a in actions)
    assert finals_of(actions) == []


def test_final_votes_above_t_f_make_the_committed_block_final() -> None:
    sb = Sandbox()
    sb.take()
    block = decide_block(sb)
    ctx = sb.node._finals[1].ctx  # the context of round 1, kept for its final votes
    sb.take()
    mine = sum(ctx.weight(FINAL_STEP, a) for a in sb.keys)
    assert mine > 0, "precondition: the node's own final votes weigh"
    # the remote votes alone stay at or below t_f: the node's own final votes count too
    signers = exact_signers(sb, ctx, T_F + 1 - mine)
    votes = [sign_final(key(a), CHAIN, 1, a, block.hash) for a in signers]
    sb.recv(*votes[:-1])
    assert not [a for a in sb.take() if isinstance(a, Finalized)]
    sb.recv(votes[-1])
    finalized = [a for a in sb.take() if isinstance(a, Finalized)]
    assert len(finalized) == 1
    cert = finalized[0].certificate
    assert (cert.round, cert.block_hash) == (1, block.hash)
    check_final_certificate(cert, ctx, sb.ledger.public_key, sb.verifier.verify_batch)
    assert FinalCertificate.decode(cert.encode()) == cert


def test_a_final_certificate_against_the_committed_block_halts_consensus() -> None:
    sb = Sandbox()
    sb.take()
    decide_block(sb)
    ctx = sb.node._finals[1].ctx
    sb.take()
    other = Block.empty(1, ctx.prev_hash)  # the adversary finalises the empty block instead
    votes = [sign_final(key(a), CHAIN, 1, a, other.hash) for a in final_signers(sb, ctx, T_F + 1)]
    sb.recv(*votes)
    halted = [a for a in sb.take() if isinstance(a, Halted)]
    assert len(halted) == 1 and "conflicts with the block this node committed" in halted[0].reason
    assert sb.node.halted is not None
    sb.add_time(10 * PARAMS.big_lam_ms)
    assert sb.take() == []  # a halted core does nothing more


def test_a_synced_certificate_against_a_final_decision_is_evidence_and_halts() -> None:
    sb = Sandbox()
    sb.take()
    block = sb.block(sb.best_remote_producer())
    value = (block.hash, block.producer)
    ctx = sb.ctx
    # final votes for `block` arrive before the node decides (it does not hold the block yet)
    votes = [sign_final(key(a), CHAIN, 1, a, block.hash) for a in final_signers(sb, ctx, T_F + 1)]
    sb.recv(*votes)
    sb.recv(*sb.votes(4, 0, value, sb.signers(4, PARAMS.t_h + 1)))  # decides: fetches it
    sb.take()
    empty = Block.empty(1, ctx.prev_hash)
    signers = sorted(sb.remote(5))
    theirs = [sign_vote(key(a), CHAIN, 1, 5, a, 1, sb.empty) for a in signers]
    cert = Certificate(1, 5, 1, *sb.empty, [(v.sender, v.cert_sig) for v in theirs])
    sb.certified((empty, cert))
    actions = sb.take()
    assert [type(a) for a in actions] == [ForkEvidence, Halted]


def test_a_restarted_node_that_sent_final_votes_signs_nothing_new_in_the_round() -> None:
    first = Sandbox()
    step1 = first.take()
    block = decide_block(first)
    sends = [a for a in (*step1, *first.take()) if isinstance(a, Send)]
    disk = [Signed(a.prev_hash, a.message) for a in sends]  # what the executor made durable
    assert any(isinstance(r.message, FinalVote) for r in disk)
    again = Sandbox(signed=SignedLog(disk))
    sent = [a.message for a in again.take() if isinstance(a, Send)]
    # its step-1 messages (stored) and its final votes, again; nothing else
    assert {type(m).__name__ for m in sent} <= {"GcBlock", "GcSignature", "FinalVote"}
    assert [m.block_hash for m in sent if isinstance(m, FinalVote)] != []
    for _ in range(8):  # its timers run through every step: it signs no new vote
        again.add_time(PARAMS.lam_ms + PARAMS.big_lam_ms)
    assert [a for a in again.take() if isinstance(a, Send)] == []
    # it still commits the block when its certificate arrives
    again.certified((block, certificate_for(again, block)))
    assert any(isinstance(a, Commit) for a in again.take())


def test_the_final_tally_counts_a_sender_once_and_only_in_the_final_committee() -> None:
    sb = Sandbox()
    ctx = sb.ctx
    tally = FinalTally(ctx)
    member = min(ctx.weights(FINAL_STEP))
    outsider = min(a for a in range(16) if ctx.weight(FINAL_STEP, a) == 0)
    assert tally.add(sign_final(key(member), CHAIN, 1, member, b"\x01" * 32))
    assert not tally.add(sign_final(key(member), CHAIN, 1, member, b"\x02" * 32))
    assert not tally.add(sign_final(key(outsider), CHAIN, 1, outsider, b"\x01" * 32))
    assert tally.decided is None


def test_a_final_certificate_that_does_not_prove_finality_is_refused() -> None:
    sb = Sandbox()
    ctx = sb.ctx
    members = sorted(ctx.weights(FINAL_STEP))
    light = FinalCertificate(
        1,
        b"\x01" * 32,
        tuple((a, sign_final(key(a), CHAIN, 1, a, b"\x01" * 32).signature) for a in members[:1]),
    )
    with pytest.raises(FinalityError, match="not above t_f"):
        check_final_certificate(light, ctx, sb.ledger.public_key, sb.verifier.verify_batch)
    forged = FinalCertificate(1, b"\x01" * 32, tuple((a, bytes(64)) for a in members))
    with pytest.raises(FinalityError, match="bad signature"):
        check_final_certificate(forged, ctx, sb.ledger.public_key, sb.verifier.verify_batch)
    with pytest.raises(ValueError, match="strictly ascending"):
        FinalCertificate(1, b"\x01" * 32, ((2, bytes(64)), (1, bytes(64))))
    with pytest.raises(ValueError, match="reserved step"):
        FinalVote(1, 7, 0, b"\x01" * 32, bytes(64))
