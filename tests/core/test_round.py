"""The node across rounds: next-round messages, catching up from certified blocks, stale timers."""

from __future__ import annotations

from _sandbox import CHAIN, PARAMS, Sandbox, key

from echorand.core.events import Commit, Relay, Sync, TimerFired, TimerKind
from echorand.protocol.signing import sign_proposal, sign_vote
from echorand.protocol.tally import empty_value
from echorand.wire.messages import NO_LEADER, Block, Certificate


def certificate_for(sb: Sandbox, block: Block, step: int = 4) -> Certificate:
    """A certificate for `block` in the node's current round, from remote step-`step` voters."""
    b = 1 if block.is_empty else 0
    value = (block.hash, NO_LEADER) if block.is_empty else (block.hash, block.producer)
    signers = sb.signers(step, PARAMS.t_h + 1)
    votes = [sign_vote(key(a), CHAIN, block.round, step, a, b, value) for a in signers]
    return Certificate(
        block.round, step, b, value[0], value[1], sorted((v.sender, v.cert_sig) for v in votes)
    )


def test_certified_block_from_a_peer_is_committed() -> None:
    sb = Sandbox()
    sb.take()
    block = sb.block(sb.best_remote_producer())
    cert = certificate_for(sb, block)
    sb.certified((block, cert))
    actions = sb.take()
    assert actions[0] == Commit(block, cert)
    assert sb.node.current_round == 2 and sb.node.tip.block_hash == block.hash


def test_bad_certificate_is_refused_and_counted() -> None:
    sb = Sandbox()
    sb.take()
    block = sb.block(sb.best_remote_producer())
    cert = certificate_for(sb, block)
    short = Certificate(1, 4, 0, cert.block_hash, cert.leader, cert.votes[1:])
    sb.certified((block, short))
    assert sb.take() == []
    assert sb.node.stats["bad certificate"] == 1 and sb.node.current_round == 1


def test_certified_chain_is_applied_in_order() -> None:
    sb = Sandbox()
    sb.take()
    empty = Block.empty(1, sb.ctx.prev_hash)
    first = (empty, certificate_for(sb, empty, step=5))
    sb.certified(first)
    second_block = sb.block(sb.best_remote_producer())
    second = (second_block, certificate_for(sb, second_block))
    sb.take()
    sb.certified(first, second)  # round 1 again is skipped
    commits = [a for a in sb.take() if isinstance(a, Commit)]
    assert commits == [Commit(*second)]
    assert sb.node.current_round == 3


def test_messages_of_a_round_two_ahead_ask_for_a_sync() -> None:
    sb = Sandbox()
    sb.take()
    sb.recv(sign_proposal(key(1), CHAIN, 3, 2, 1, (bytes(32), 0)))
    assert sb.take() == [Sync(1)]
    assert sb.node.stats["future round"] == 1
    sb.recv(sign_proposal(key(2), CHAIN, 3, 2, 2, (bytes(32), 0)))
    assert sb.take() == []  # at most one sync per 2λ + Λ


def test_next_round_messages_are_handled_when_the_node_gets_there() -> None:
    sb = Sandbox()
    sb.take()
    empty = Block.empty(1, sb.ctx.prev_hash)
    cert = certificate_for(sb, empty, step=5)
    # a round-2 proposal arrives early; its sender's membership is only known in round 2
    round2_empty = empty_value(2, empty.hash)
    early = [sign_proposal(key(a), CHAIN, 2, 2, a, round2_empty) for a in range(1, 16)]
    sb.recv(*early)
    assert sb.take() == []
    sb.certified((empty, cert))
    actions = sb.take()
    assert actions[0] == Commit(empty, cert)
    relayed = [a.message for a in actions if isinstance(a, Relay)]
    members = set(sb.ctx.weights(2))
    assert relayed == [m for m in early if m.sender in members]
    assert sb.node.stats["not in committee"] == len(early) - len(relayed)


def test_timers_of_a_finished_round_are_ignored() -> None:
    sb = Sandbox()
    sb.take()
    empty = Block.empty(1, sb.ctx.prev_hash)
    sb.certified((empty, certificate_for(sb, empty, step=5)))
    sb.take()
    actions = sb.node.handle(TimerFired(10_000, 1, 3, TimerKind.DEADLINE))
    assert actions == []
    sb.assert_state(2, 2)
