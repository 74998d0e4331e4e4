"""BBA (steps 5..): each rule on hand-built votes, then on a node with a fake clock; the coin."""

from __future__ import annotations

import hashlib

import pytest
from _sandbox import EMPTY_VALUE, PARAMS, Sandbox
from hypothesis import given
from hypothesis import strategies as st

from echorand.core.bba import StepKind, StepVotes, Vote, coin, deciding_vote, run_step, step_kind
from echorand.core.events import Commit, Relay
from echorand.wire.messages import Block

T_H = 13
V = (b"\x07" * 32, 4)
W = (b"\x08" * 32, 5)


def votes(*entries: tuple[int, int, tuple[bytes, int]]) -> StepVotes:
    """StepVotes from (weight, b, value) entries, one signer each."""
    sv = StepVotes()
    for signer, (weight, b, value) in enumerate(entries):
        assert sv.add(signer, weight, Vote(b, value), bytes(64))
    return sv


def step(
    s: int, previous: StepVotes, timed_out: bool = False, coin_bit: int = 0, past_mu: bool = False
):
    return run_step(s, previous, T_H, V, EMPTY_VALUE, coin_bit, past_mu, timed_out)


def test_step_kinds_cycle_from_step_5() -> None:
    assert [step_kind(s) for s in range(5, 11)] == [
        StepKind.COIN_FIXED_TO_0,
        StepKind.COIN_FIXED_TO_1,
        StepKind.COIN_FLIPPED,
    ] * 2
    with pytest.raises(ValueError):
        step_kind(4)


def test_coin_fixed_to_0_decides_the_block_on_w0_above_t_h() -> None:
    outcome = step(5, votes((T_H + 1, 0, V)))
    assert outcome is not None and outcome.decided and outcome.vote == Vote(0, V)


def test_coin_fixed_to_0_w1_above_t_h_gives_b1_without_deciding() -> None:
    outcome = step(8, votes((T_H + 1, 1, EMPTY_VALUE)))
    assert outcome is not None and not outcome.decided and outcome.vote.b == 1


def test_coin_fixed_to_0_waits_then_defaults_to_b0() -> None:
    split = votes((T_H, 0, V), (5, 1, EMPTY_VALUE))
    assert step(5, split) is None
    outcome = step(5, split, timed_out=True)
    assert outcome is not None and outcome.vote == Vote(0, V) and not outcome.decided


def test_coin_fixed_to_1_decides_empty_on_w1_above_t_h() -> None:
    outcome = step(6, votes((T_H + 1, 1, EMPTY_VALUE)))
    assert outcome is not None and outcome.decided and outcome.vote == Vote(1, EMPTY_VALUE)


def test_coin_fixed_to_1_w0_above_t_h_gives_b0_and_adopts_the_value() -> None:
    outcome = run_step(6, votes((T_H + 1, 0, W)), T_H, V, EMPTY_VALUE, 0, False, False)
    assert outcome is not None and not outcome.decided and outcome.vote == Vote(0, W)


def test_coin_fixed_to_1_waits_then_defaults_to_b1() -> None:
    assert step(9, votes((3, 0, V))) is None
    outcome = step(9, votes((3, 0, V)), timed_out=True)
    assert outcome is not None and outcome.vote.b == 1 and not outcome.decided


@pytest.mark.parametrize("bit", [0, 1])
def test_coin_flipped_step_takes_the_coin_at_its_timer(bit: int) -> None:
    outcome = step(7, votes((6, 0, V), (6, 1, EMPTY_VALUE)), timed_out=True, coin_bit=bit)
    assert outcome is not None and outcome.vote.b == bit and not outcome.decided


def test_coin_flipped_step_follows_a_passed_bit() -> None:
    for vote in (Vote(0, V), Vote(1, EMPTY_VALUE)):
        outcome = step(7, votes((T_H + 1, vote.b, vote.value)), coin_bit=1 - vote.b)
        assert outcome is not None and outcome.vote.b == vote.b and not outcome.decided


def test_a_default_b0_of_a_node_with_an_empty_value_votes_b1() -> None:
    # PROTOCOL §5 (revision 2): b = 0 always carries a block's value; where only the default
    # (c = 0) or the coin gives b = 0 to a node whose value is empty, it votes b = 1
    split = votes((T_H, 0, V), (5, 1, EMPTY_VALUE))
    for s, coin_bit in ((5, 0), (7, 0)):
        outcome = run_step(s, split, T_H, EMPTY_VALUE, EMPTY_VALUE, coin_bit, False, True)
        assert outcome is not None and outcome.vote == Vote(1, EMPTY_VALUE)
    # with a block's value the default b = 0 carries it
    outcome = run_step(5, split, T_H, W, EMPTY_VALUE, 0, False, True)
    assert outcome is not None and outcome.vote == Vote(0, W)


def test_a_passed_w1_is_voted_with_the_empty_value_not_the_own_value() -> None:
    outcome = step(8, votes((T_H + 1, 1, EMPTY_VALUE)))
    assert outcome is not None and outcome.vote == Vote(1, EMPTY_VALUE)


def test_after_mu_the_flipped_step_defaults_to_the_empty_block() -> None:
    s = PARAMS.mu + 3  # a COIN_FLIPPED step past mu
    assert step_kind(s) is StepKind.COIN_FLIPPED
    outcome = step(s, votes((6, 0, V)), timed_out=True, coin_bit=0, past_mu=True)
    assert outcome is not None and outcome.vote.b == 1


def test_a_signer_counts_once_per_step() -> None:
    sv = StepVotes()
    assert sv.add(1, T_H, Vote(0, V), bytes(64))
    assert not sv.add(1, T_H, Vote(1, EMPTY_VALUE), bytes(64))  # equivocation adds nothing
    assert sv.tally.weight((0, V)) == T_H and not sv.w1(T_H)


def test_only_steps_before_a_fixed_coin_decide() -> None:
    zero = votes((T_H + 1, 0, V))
    one = votes((T_H + 1, 1, EMPTY_VALUE))
    assert [deciding_vote(s, zero, T_H) for s in (3, 4, 5, 6, 7)] == [
        None,
        Vote(0, V),
        None,
        None,
        Vote(0, V),
    ]
    assert [deciding_vote(s, one, T_H) for s in (4, 5, 6, 7, 8)] == [
        None,
        Vote(1, EMPTY_VALUE),
        None,
        None,
        Vote(1, EMPTY_VALUE),
    ]


# --- on a node ------------------------------------------------------------------------------


def test_step4_quorum_for_a_block_commits_it_with_a_step4_certificate() -> None:
    sb = Sandbox()
    sb.take()
    block = sb.block(sb.best_remote_producer())
    sb.recv(sb.gc_block(block))
    value = (block.hash, block.producer)
    msgs = sb.votes(4, 0, value, sb.signers(4, PARAMS.t_h + 1))
    sb.take()
    finals = sb.my_finals(block.hash)  # decided from step-4 votes, nothing signed later
    sb.recv(*msgs)
    actions = sb.take()
    assert actions[: len(msgs)] == [Relay(m) for m in msgs]
    assert finals and actions[len(msgs) : len(msgs) + len(finals)] == finals
    commit = actions[len(msgs) + len(finals)]
    assert isinstance(commit, Commit) and commit.block == block
    cert = commit.certificate
    assert (cert.round, cert.step, cert.b, cert.value) == (1, 4, 0, value)
    assert [s for s, _ in cert.votes] == sorted(m.sender for m in msgs)
    # the next round starts at once: round 2
    assert sb.node.current_round == 2


def test_step5_quorum_for_b1_commits_the_empty_block() -> None:
    sb = Sandbox()
    sb.take()
    msgs = sb.votes(5, 1, sb.empty, sb.signers(5, PARAMS.t_h + 1))  # b = 1: the empty value
    finals = sb.my_finals(sb.empty[0])  # decided from step-5 votes, nothing signed later
    sb.recv(*msgs)
    actions = sb.take()
    assert finals and actions[len(msgs) : len(msgs) + len(finals)] == finals
    commit = actions[len(msgs) + len(finals)]
    assert isinstance(commit, Commit)
    assert commit.block == Block.empty(1, sb.genesis.block_hash)
    assert (commit.certificate.step, commit.certificate.b) == (5, 1)
    assert commit.certificate.value == EMPTY_VALUE


def test_decided_block_not_held_is_fetched_then_committed() -> None:
    sb = Sandbox()
    sb.take()
    block = sb.block(sb.best_remote_producer())
    value = (block.hash, block.producer)
    msgs = sb.votes(4, 0, value, sb.signers(4, PARAMS.t_h + 1))
    sb.recv(*msgs)
    from echorand.core.events import FetchBlock

    # no final vote for a block it does not hold: the votes may be of another fork
    assert sb.take()[len(msgs) :] == [FetchBlock(1, block.hash)]
    sb.block_received(sb.block(sb.best_remote_producer(), transactions=()))
    commit = sb.take()[0]
    assert isinstance(commit, Commit) and commit.block == block


def test_bba_steps_run_on_their_timers_with_the_default_bits() -> None:
    sb = Sandbox()
    own = sb.take()[0].message.block
    # nobody else speaks: the node proposes its own block at 2λ, nothing passes,
    # then BBA runs from (b=1, empty)
    sb.add_time(2 * PARAMS.lam_ms)
    assert sb.take() == sb.my_proposals(2, (own.hash, own.producer))
    sb.add_time(PARAMS.lam_ms + PARAMS.big_lam_ms)
    assert sb.take() == sb.my_proposals(3, EMPTY_VALUE)
    sb.add_time(2 * PARAMS.lam_ms)
    assert sb.take() == sb.my_votes(4, 1, EMPTY_VALUE)
    # coin fixed to 0: its default b = 0 would carry the empty value, so the node votes b = 1
    sb.add_time(2 * PARAMS.lam_ms)
    assert sb.take() == sb.my_votes(5, 1, EMPTY_VALUE)
    sb.add_time(2 * PARAMS.lam_ms)
    assert sb.take() == sb.my_votes(6, 1, EMPTY_VALUE)  # coin fixed to 1
    sb.add_time(2 * PARAMS.lam_ms)
    assert sb.take() == sb.my_votes(7, 1, EMPTY_VALUE)  # the coin, whatever it is: b = 1 again
    sb.assert_state(1, 8)


# --- the coin (PROTOCOL §5) ---------------------------------------------------------------


@given(
    seed=st.binary(min_size=32, max_size=32),
    round=st.integers(1, 2**64 - 1),
    step=st.integers(5, 2**32 - 1),
)
def test_coin_is_the_last_bit_of_the_hash(seed: bytes, round: int, step: int) -> None:
    digest = hashlib.sha256(
        seed + round.to_bytes(8, "big") + step.to_bytes(4, "big") + b"coin"
    ).digest()
    assert coin(seed, round, step) == digest[31] & 1


def test_coin_takes_both_values_across_steps() -> None:
    seed = hashlib.sha256(b"coin seed").digest()
    flips = [coin(seed, 3, s) for s in range(7, 7 + 3 * 40, 3)]
    assert set(flips) == {0, 1}


def test_coin_of_known_inputs() -> None:
    """Pinned: the last digest bytes for steps 5..11 are 17 55 eb 37 d5 0d fc."""
    assert [coin(bytes(32), 1, s) for s in range(5, 12)] == [1, 1, 1, 1, 1, 1, 0]


@pytest.mark.parametrize("length", [0, 31, 33, 64])
def test_coin_refuses_a_seed_of_the_wrong_length(length: int) -> None:
    with pytest.raises(ValueError, match=f"seed must be 32 bytes, got {length}"):
        coin(bytes(length), 1, 7)
