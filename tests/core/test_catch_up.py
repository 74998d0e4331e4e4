"""The step catch-up (docs/protocol.md §7): a node far behind in the BBA steps of its round
skips to the step where more than N_c - t_h of the committee votes, abstaining in between,
and the round can then end; with less evidence it stays where it is."""

from __future__ import annotations

from _sandbox import EMPTY_VALUE, PARAMS, Sandbox

from echorand.core.bba import Vote
from echorand.core.events import PAST_MU, Commit, Relay, Send, SuspectFork
from echorand.wire.messages import BbaSignature, Block

GONE = PARAMS.n_c - PARAMS.t_h
"""More than this weight in a later step: no earlier step can reach t_h any more."""
FAR = 2 + PARAMS.mu + 9
"""A step beyond the window of a node at step 2 (steps up to 2 + mu are counted)."""
DECIDING = FAR + (5 - FAR) % 3
"""The first step at or after FAR whose b = 1 votes decide the empty block (5, 8, 11, ...)."""


def _remote(sb: Sandbox, step: int, weight: int, skip: frozenset[int] = frozenset()) -> list:
    """b = 1 votes for the empty block at `step`, from remote accounts of at least `weight`."""
    signers, total = [], 0
    for account, seats in sorted(sb.remote(step).items()):
        if total >= weight:
            break
        if account not in skip:
            signers.append(account)
            total += seats
    assert total >= weight, "not enough remote weight in the step"
    return sb.votes(step, 1, EMPTY_VALUE, signers)


def _weight(sb: Sandbox, step: int, votes: list) -> int:
    return sum(sb.ctx.weight(step, v.sender) for v in votes)


def test_votes_far_ahead_from_more_than_n_c_minus_t_h_move_the_node_there() -> None:
    sb = Sandbox()
    sb.take()
    votes = _remote(sb, DECIDING, GONE + 1)
    assert GONE < _weight(sb, DECIDING, votes) <= PARAMS.t_h  # evidence, not a quorum
    sb.recv(*votes)
    sb.assert_state(1, DECIDING)
    assert sb.node.stats["caught up"] == 1
    assert sb.take() == [Relay(v) for v in votes]  # kept, then counted and relayed
    assert sb.node.round is not None
    counted = sb.node.round.step_votes(DECIDING).votes_for(Vote(1, EMPTY_VALUE))
    assert [s for s, _ in counted] == sorted(v.sender for v in votes)
    sb.add_time(2 * PARAMS.lam_ms)  # the node votes at the step it joined, and goes on
    acts = sb.take()
    assert [a for a in acts if not isinstance(a, SuspectFork)] == sb.my_votes(
        DECIDING, 1, EMPTY_VALUE
    )
    assert acts.count(SuspectFork(1, sb.genesis.block_hash, PAST_MU)) == 1  # compare chains
    sb.assert_state(1, DECIDING + 1)


def test_the_round_ends_once_the_late_node_votes_with_the_others() -> None:
    sb = Sandbox()
    sb.take()
    first = _remote(sb, DECIDING, GONE + 1)
    sb.recv(*first)
    sb.add_time(2 * PARAMS.lam_ms)
    sb.take()
    counted = _weight(sb, DECIDING, first) + sb.my_weight(DECIDING)
    rest = _remote(sb, DECIDING, PARAMS.t_h + 1 - counted, frozenset(v.sender for v in first))
    sb.recv(*rest)
    commits = [a for a in sb.take() if isinstance(a, Commit)]
    assert len(commits) == 1
    cert = commits[0].certificate
    assert commits[0].block == Block.empty(1, sb.genesis.block_hash)
    assert (cert.round, cert.step, cert.b) == (1, DECIDING, 1)
    assert sb.keys.keys() & {s for s, _ in cert.votes}  # the late node's vote is in it


def test_no_more_than_n_c_minus_t_h_ahead_leaves_the_node_where_it_is() -> None:
    sb = Sandbox()
    sb.take()
    votes = _remote(sb, FAR, 1)
    while _weight(sb, FAR, votes) > GONE:
        votes.pop()
    sb.recv(*votes)
    sb.assert_state(1, 2)
    assert sb.take() == [] and sb.node.stats["caught up"] == 0
    assert sb.node.stats["step ahead"] == len(votes)
    more = _remote(sb, FAR, GONE + 1 - _weight(sb, FAR, votes), frozenset(v.sender for v in votes))
    sb.recv(*more)  # with the evidence already kept, now more than N_c - t_h
    sb.assert_state(1, FAR)


def test_forged_votes_ahead_are_no_evidence() -> None:
    sb = Sandbox()
    sb.take()
    votes = _remote(sb, FAR, GONE + 1)
    forged = [
        BbaSignature(v.round, v.step, v.sender, v.b, *v.value, v.cert_sig, bytes(64)) for v in votes
    ]
    sb.recv(*forged)
    sb.assert_state(1, 2)
    assert sb.node.stats["caught up"] == 0 and not [a for a in sb.take() if isinstance(a, Send)]


def test_groups_at_different_steps_ahead_add_up_and_the_node_joins_the_lower() -> None:
    sb = Sandbox()
    sb.take()
    higher = FAR + 6
    front = _remote(sb, higher, 1)
    while _weight(sb, higher, front) * 2 > GONE + 1:
        front.pop()
    sb.recv(*front)  # alone, too little: the node stays
    sb.assert_state(1, 2)
    behind = _remote(
        sb, FAR, GONE + 1 - _weight(sb, higher, front), frozenset(v.sender for v in front)
    )
    assert _weight(sb, FAR, behind) <= GONE  # alone, too little as well
    sb.recv(*behind)
    sb.assert_state(1, FAR)  # together they are more than N_c - t_h from FAR on
    assert sb.node.stats["caught up"] == 1
