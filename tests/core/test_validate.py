"""Bad messages are dropped, counted, and change nothing; the gossip relay rule."""

from __future__ import annotations

import hashlib

import pytest
from _sandbox import CHAIN, EMPTY_VALUE, PARAMS, Sandbox, key

from echorand.core.events import OTHER_PARENT, Disconnect, Relay, SuspectFork
from echorand.core.validate import CachingVerifier, DropReason, NativeVerifier, should_relay
from echorand.protocol.signing import NO_SIGNATURE, sign_proposal, sign_vote
from echorand.protocol.tally import empty_value
from echorand.wire.messages import BbaSignature, GcBlock, GcProposal


@pytest.fixture
def sb() -> Sandbox:
    s = Sandbox()
    s.take()
    return s


def assert_dropped(sb: Sandbox, msg: object, reason: str) -> None:
    """Dropped and counted, nothing changed; a malicious drop names its message's sender
    for a disconnect, a benign one asks for nothing."""
    why = DropReason(reason)
    before = sb.node.stats[reason]
    state = (sb.node.current_round, sb.node.round.step, len(sb.node.round.gc.step2))
    sb.recv(msg)
    assert sb.take() == ([Disconnect(msg, why)] if why.malicious else [])
    assert sb.node.stats[reason] == before + 1
    assert (sb.node.current_round, sb.node.round.step, len(sb.node.round.gc.step2)) == state


def member(sb: Sandbox, step: int) -> int:
    return min(sb.remote(step))


def non_member(sb: Sandbox, step: int) -> int:
    return min(a for a in range(16) if a not in sb.ctx.weights(step))


def test_wrong_step_is_dropped(sb: Sandbox) -> None:
    a = member(sb, 2)
    msg = sign_proposal(key(a), CHAIN, 1, 4, a, EMPTY_VALUE)  # gc_proposal only in steps 2, 3
    assert_dropped(sb, msg, "wrong step")


def test_old_round_is_dropped(sb: Sandbox) -> None:
    # move to round 2 with an empty-block certificate, then replay a round-1 vote
    msgs = sb.votes(5, 1, EMPTY_VALUE, sb.signers(5, PARAMS.t_h + 1))
    sb.recv(*msgs)
    sb.take()
    assert sb.node.current_round == 2
    assert_dropped(sb, sign_proposal(key(1), CHAIN, 1, 2, 1, EMPTY_VALUE), "old round")


def test_non_member_is_dropped(sb: Sandbox) -> None:
    a = non_member(sb, 2)
    assert_dropped(sb, sign_proposal(key(a), CHAIN, 1, 2, a, EMPTY_VALUE), "not in committee")


def test_bad_signature_is_dropped(sb: Sandbox) -> None:
    a = member(sb, 2)
    good = sign_proposal(key(a), CHAIN, 1, 2, a, EMPTY_VALUE)
    forged = GcProposal(
        1, 2, a, good.block_hash, good.leader, key(a + 1).sign(good.signing_bytes(CHAIN))
    )
    assert_dropped(sb, forged, "bad signature")
    # the genuine message still counts afterwards
    sb.recv(good)
    assert sb.take() == [Relay(good)]


def test_a_vote_for_the_empty_block_of_another_fork_is_dropped(sb: Sandbox) -> None:
    # the empty value is H(B_ε) of the round on its H(B_{r-1}) (PROTOCOL §5): a b = 1 vote
    # cast on another fork, or for another round's empty block, counts for nothing here
    a = member(sb, 5)
    for foreign in (empty_value(1, bytes(31) + b"\x01"), empty_value(2, CHAIN)):
        assert foreign != EMPTY_VALUE
        assert_dropped(sb, sign_vote(key(a), CHAIN, 1, 5, a, 1, foreign), "wrong empty value")
    b = member(sb, 2)
    foreign = empty_value(1, bytes(32))
    assert_dropped(sb, sign_proposal(key(b), CHAIN, 1, 2, b, foreign), "wrong empty value")


@pytest.mark.parametrize("kind", ["proposal", "vote", "cert_sig"])
def test_a_message_signed_for_another_network_is_dropped(sb: Sandbox, kind: str) -> None:
    # PROTOCOL §2 (revision 2): every signature is over the genesis hash; the same keys on
    # another network sign other bytes
    other = hashlib.sha256(b"another network").digest()
    a = member(sb, 2 if kind == "proposal" else 5)
    if kind == "proposal":
        msg = sign_proposal(key(a), other, 1, 2, a, EMPTY_VALUE)
    elif kind == "vote":
        msg = sign_vote(key(a), other, 1, 5, a, 1, EMPTY_VALUE)
    else:  # a message signed here around a cert_sig made for the other network
        theirs = sign_vote(key(a), other, 1, 5, a, 1, EMPTY_VALUE)
        fields = (1, 5, a, 1, *EMPTY_VALUE, theirs.cert_sig)
        draft = BbaSignature(*fields, NO_SIGNATURE)
        msg = BbaSignature(*fields, key(a).sign(draft.signing_bytes(CHAIN)))
    assert_dropped(sb, msg, "bad signature")


def test_vote_with_a_bad_cert_sig_is_dropped(sb: Sandbox) -> None:
    a = member(sb, 4)
    good = sign_vote(key(a), CHAIN, 1, 4, a, 1, EMPTY_VALUE)
    from echorand.wire.messages import BbaSignature

    fields = (1, 4, a, 1, EMPTY_VALUE[0], EMPTY_VALUE[1], NO_SIGNATURE)
    draft = BbaSignature(*fields, NO_SIGNATURE)
    bad = BbaSignature(*fields, key(a).sign(draft.signing_bytes(CHAIN)))
    assert bad != good
    assert_dropped(sb, bad, "bad signature")


def test_block_on_another_previous_block_is_dropped(sb: Sandbox) -> None:
    from echorand.protocol.signing import sign_block, sign_gc_block

    p = sb.best_remote_producer()
    block = sign_block(key(p), CHAIN, 1, b"\x09" * 32, p, sb.ctx.seed, ())
    before = sb.node.stats["wrong previous block"]
    sb.recv(sign_gc_block(key(p), CHAIN, p, block))
    # dropped, and its producer holds another chain: compare chains (PROTOCOL §6), once
    assert sb.take() == [SuspectFork(1, sb.ctx.prev_hash, OTHER_PARENT)]
    assert sb.node.stats["wrong previous block"] == before + 1
    other = sign_block(key(p), CHAIN, 1, b"\x0a" * 32, p, sb.ctx.seed, ())
    sb.recv(sign_gc_block(key(p), CHAIN, p, other))
    assert sb.take() == []


def test_block_from_a_non_producer_is_dropped(sb: Sandbox) -> None:
    from echorand.protocol.signing import sign_block, sign_gc_block

    # a precondition of the sandbox's genesis seed (fixed), not a condition to skip on
    assert any(a not in sb.ctx.weights(1) for a in range(16)), "every account is a producer"
    p = non_member(sb, 1)
    block = sign_block(key(p), CHAIN, 1, sb.ctx.prev_hash, p, sb.ctx.seed, ())
    assert_dropped(sb, sign_gc_block(key(p), CHAIN, p, block), "not a producer")


def test_block_signed_by_another_producer_is_dropped(sb: Sandbox) -> None:
    p = sb.best_remote_producer()
    block = sb.block(p)
    gc = sb.gc_block(block)
    other = GcBlock(1, 1, p, block, key(p + 1).sign(gc.signing_bytes(CHAIN)))
    assert_dropped(sb, other, "bad signature")


def test_repeated_vote_counts_once_and_is_relayed_once(sb: Sandbox) -> None:
    a = member(sb, 2)
    msg = sign_proposal(key(a), CHAIN, 1, 2, a, EMPTY_VALUE)
    sb.recv(msg)
    assert sb.take() == [Relay(msg)]
    weight = sb.node.round.gc.step2.weight(EMPTY_VALUE)
    sb.recv(msg)
    assert sb.take() == []
    assert sb.node.stats["duplicate"] == 1
    assert sb.node.round.gc.step2.weight(EMPTY_VALUE) == weight


def test_equivocating_vote_adds_no_weight_and_is_not_relayed(sb: Sandbox) -> None:
    a = member(sb, 2)
    p = sb.best_remote_producer()
    block = sb.block(p)
    first = sign_proposal(key(a), CHAIN, 1, 2, a, EMPTY_VALUE)
    second = sign_proposal(key(a), CHAIN, 1, 2, a, (block.hash, p))
    sb.recv(first)
    sb.take()
    sb.recv(second)
    assert sb.take() == []
    assert sb.node.round.gc.step2.weight((block.hash, p)) == 0
    assert sb.node.stats["repeat or conflict"] == 1


def test_proposal_conflicting_with_a_known_block_hash_is_dropped(sb: Sandbox) -> None:
    p = sb.best_remote_producer()
    block = sb.block(p)
    sb.recv(sb.gc_signature(block))
    sb.take()
    a = member(sb, 2)
    assert_dropped(
        sb, sign_proposal(key(a), CHAIN, 1, 2, a, (b"\x05" * 32, p)), "repeat or conflict"
    )


def test_messages_of_the_next_round_wait_for_it(sb: Sandbox) -> None:
    a = member(sb, 2)
    early = sign_proposal(key(a), CHAIN, 2, 2, a, EMPTY_VALUE)
    sb.recv(early)
    assert sb.take() == []
    assert sb.node.stats["accepted"] == 0


# --- the relay rule -------------------------------------------------------------------------------


def test_first_gc_block_is_relayed_later_ones_only_if_better(sb: Sandbox) -> None:
    producers = sorted(
        (sb.ctx.priority(a), a) for a in range(1, 16) if sb.ctx.priority(a) is not None
    )
    # a precondition of the sandbox's genesis seed (fixed): three remote producers
    assert len(producers) >= 3, f"only {len(producers)} remote producers"
    (_, best), (_, second), (_, third) = producers[:3]
    worse_block, best_block = sb.block(second), sb.block(best)
    sb.recv(sb.gc_block(worse_block))
    assert Relay(sb.gc_block(worse_block)) in sb.take()
    sb.recv(sb.gc_block(best_block))
    assert Relay(sb.gc_block(best_block)) in sb.take()
    late = sb.block(third)  # worse than the best seen: not relayed
    sb.recv(sb.gc_block(late))
    assert Relay(sb.gc_block(late)) not in sb.take()


def test_should_relay_pure_rule() -> None:
    msg = sign_proposal(key(1), CHAIN, 1, 2, 1, EMPTY_VALUE)
    assert should_relay(msg, counted=True, priority=None, best_before=None)
    assert not should_relay(msg, counted=False, priority=None, best_before=None)


def test_caching_verifier_agrees_with_the_native_one() -> None:
    k = key(3)
    payloads = [b"a", b"b", b"c"]
    sigs = [k.sign(p) for p in payloads]
    sigs[1] = sigs[0]
    cached = CachingVerifier(NativeVerifier())
    keys = [k.public_key] * 3
    assert cached.verify_batch(keys, payloads, sigs) == [True, False, True]
    assert cached.verify_batch(keys, payloads, sigs) == [True, False, True]
    assert (cached.misses, cached.hits) == (3, 3)
