"""Graded consensus (steps 1-4), one rule per test, on a single node with a fake clock."""

from __future__ import annotations

import pytest
from _sandbox import CHAIN, EMPTY_VALUE, LOCAL, PARAMS, Sandbox, key

from echorand.core.events import Relay, Send, ValidateBlock
from echorand.core.gc import GradedConsensus
from echorand.protocol.signing import sign_block, sign_gc_block, sign_gc_signature

LAM, BIG = PARAMS.lam_ms, PARAMS.big_lam_ms
T_H = PARAMS.t_h


@pytest.fixture
def sb() -> Sandbox:
    return Sandbox()


def leader_block(sb: Sandbox):
    """The best remote producer's block, delivered with its gc_signature; its validation asked."""
    sb.take()
    producer = sb.best_remote_producer()
    block = sb.block(producer)
    gc_block, gc_sig = sb.gc_block(block), sb.gc_signature(block)
    sb.recv(gc_sig, gc_block)
    assert sb.take() == [Relay(gc_sig), Relay(gc_block), ValidateBlock(block)]
    return block


def test_step1_producer_sends_block_and_seed_signature() -> None:
    sb = Sandbox()
    ctx = sb.ctx
    block = sign_block(key(LOCAL), CHAIN, 1, ctx.prev_hash, LOCAL, ctx.seed, ())
    assert sb.take() == [
        Send(sign_gc_block(key(LOCAL), CHAIN, LOCAL, block)),
        Send(sign_gc_signature(key(LOCAL), CHAIN, LOCAL, block)),
    ]
    assert sorted(t.at_ms for t in sb.timers) == [2 * LAM, LAM + BIG, 3 * LAM + BIG]


def test_step2_waits_2_lambda_then_proposes_the_best_producer(sb: Sandbox) -> None:
    block = leader_block(sb)
    sb.validated(block.hash)
    sb.add_time(2 * LAM - 1)
    assert sb.take() == []
    sb.add_time(1)
    assert sb.take() == sb.my_proposals(2, (block.hash, block.producer))
    sb.assert_state(1, 3)


def test_step2_leader_is_lowest_priority_not_first_heard(sb: Sandbox) -> None:
    sb.take()
    best = sb.best_remote_producer()
    # our own block (priority > 0) was heard first; the remote best arrives later
    block = sb.block(best)
    sb.recv(sb.gc_block(block))
    sb.validated(block.hash)
    sb.take()
    sb.add_time(2 * LAM)
    assert sb.take() == sb.my_proposals(2, (block.hash, best))


def test_step2_proposes_once_the_leaders_block_arrives_after_2_lambda(sb: Sandbox) -> None:
    sb.take()
    best = sb.best_remote_producer()
    block = sb.block(best)
    sb.recv(sb.gc_signature(block))
    sb.take()
    sb.add_time(2 * LAM)
    assert sb.take() == []  # the leader is known, its block is not
    sb.recv(sb.gc_block(block))
    assert sb.take() == [Relay(sb.gc_block(block)), ValidateBlock(block)]
    sb.validated(block.hash)
    assert sb.take() == sb.my_proposals(2, (block.hash, best))


def test_step2_proposes_empty_at_lambda_plus_big_lambda_without_the_block(sb: Sandbox) -> None:
    sb.take()
    best = sb.best_remote_producer()
    sb.recv(sb.gc_signature(sb.block(best)))
    sb.take()
    sb.add_time(LAM + BIG - 1)
    assert sb.take() == []
    sb.add_time(1)
    assert sb.take() == sb.my_proposals(2, EMPTY_VALUE)


def test_step2_proposes_empty_when_the_leaders_payload_is_invalid(sb: Sandbox) -> None:
    block = leader_block(sb)
    sb.add_time(2 * LAM)
    assert sb.take() == []
    sb.validated(block.hash, ok=False)
    assert sb.take() == sb.my_proposals(2, EMPTY_VALUE)


def to_step3(sb: Sandbox):
    block = leader_block(sb)
    sb.validated(block.hash)
    sb.add_time(2 * LAM)
    sb.take()
    sb.assert_state(1, 3)
    return block


def test_step3_passes_a_value_as_soon_as_its_weight_exceeds_t_h(sb: Sandbox) -> None:
    block = to_step3(sb)
    value = (block.hash, block.producer)
    need = T_H + 1 - sb.my_weight(2)  # our own step-2 vote counts
    signers = sb.signers(2, need)
    msgs = sb.proposals(2, value, signers)
    sb.recv(*msgs[:-1])
    assert sb.take() == [Relay(m) for m in msgs[:-1]]
    sb.recv(msgs[-1])
    assert sb.take() == [Relay(msgs[-1]), *sb.my_proposals(3, value)]
    sb.assert_state(1, 4)


def test_step3_weight_equal_to_t_h_does_not_pass(sb: Sandbox) -> None:
    block = to_step3(sb)
    value = (block.hash, block.producer)
    msgs = sb.proposals(2, value, sb.signers(2, T_H - sb.my_weight(2)))
    sb.recv(*msgs)
    assert sb.take() == [Relay(m) for m in msgs]
    sb.add_time(3 * LAM + BIG - sb.now)
    assert sb.take() == sb.my_proposals(3, EMPTY_VALUE)
    assert sorted(t.at_ms for t in sb.timers)[-1] == 3 * LAM + BIG + 2 * LAM


def to_step4(sb: Sandbox):
    block = to_step3(sb)
    value = (block.hash, block.producer)
    sb.recv(*sb.proposals(2, value, sb.signers(2, T_H + 1 - sb.my_weight(2))))
    sb.take()
    sb.assert_state(1, 4)
    return value


def test_step4_value_above_t_h_gives_b0_right_after_the_deciding_message(sb: Sandbox) -> None:
    value = to_step4(sb)
    msgs = sb.proposals(3, value, sb.signers(3, T_H + 1 - sb.my_weight(3)))
    sb.recv(*msgs[:-1])
    assert sb.take() == [Relay(m) for m in msgs[:-1]]
    sb.recv(msgs[-1])
    assert sb.take() == [Relay(msgs[-1]), *sb.my_votes(4, 0, value)]


def test_step4_empty_value_above_t_h_gives_b1(sb: Sandbox) -> None:
    to_step4(sb)
    msgs = sb.proposals(3, EMPTY_VALUE, sb.signers(3, T_H + 1))
    sb.recv(*msgs)
    assert sb.take() == [*(Relay(m) for m in msgs), *sb.my_votes(4, 1, EMPTY_VALUE)]


def test_step4_timer_keeps_a_value_above_half_t_h_with_b1(sb: Sandbox) -> None:
    value = to_step4(sb)
    # our own step-3 vote was for `value`; bring it just above t_h / 2
    need = T_H // 2 + 1 - sb.my_weight(3)
    msgs = sb.proposals(3, value, sb.signers(3, need)) if need > 0 else []
    sb.recv(*msgs)
    sb.take()
    sb.add_time(2 * LAM)
    # b = 1 votes carry the round's empty value (PROTOCOL §5); the node keeps `value` as its
    # own, for a later coin-0 step
    assert sb.take() == sb.my_votes(4, 1, sb.empty)
    assert sb.node.round is not None and sb.node.round.own_value == value


def test_step4_timer_without_half_t_h_votes_empty_with_b1() -> None:
    gc = GradedConsensus(T_H, EMPTY_VALUE)
    gc.step3.add(1, T_H // 2, (b"\x01" * 32, 3))
    assert gc.step4_value(timed_out=False) is None
    graded = gc.step4_value(timed_out=True)
    assert graded is not None and (graded.b, graded.value) == (1, EMPTY_VALUE)


def test_conflicting_block_hash_from_a_producer_is_dropped(sb: Sandbox) -> None:
    block = leader_block(sb)
    other = sb.block(block.producer, transactions=())
    assert other == block  # signing is deterministic: the same block again
    # a different block by the same producer: another prev-independent payload
    from echorand.protocol.signing import NO_SIGNATURE
    from echorand.wire.messages import Transaction

    k = key(block.producer)
    draft = Transaction(0, k.public_key, k.public_key, 0, 0, 1, NO_SIGNATURE)
    tx = Transaction(0, k.public_key, k.public_key, 0, 0, 1, k.sign(draft.signing_bytes(CHAIN)))
    second = sb.block(block.producer, transactions=(tx,))
    before = dict(sb.node.stats)
    sb.recv(sb.gc_block(second), sb.gc_signature(second))
    assert sb.take() == []
    assert sb.node.stats["repeat or conflict"] == before.get("repeat or conflict", 0) + 2
    assert sb.node.round.gc.proposals[block.producer].block_hash == block.hash
