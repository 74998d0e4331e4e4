"""The nemesis schedule (a function of the seed) and a client lane's choices. Fast."""

from __future__ import annotations

import itertools

import pytest

from echorand.ledger.mempool import ALREADY_QUEUED
from echorand.tools.chaos.client import ClientOptions, Lane
from echorand.tools.chaos.history import ACK, ERROR, REFUSED, TIMEOUT
from echorand.tools.chaos.nemesis import DURATIONS, KINDS, QUIET, WARMUP, schedule
from echorand.wire.transactions import NONCE_TOO_HIGH, NONCE_TOO_LOW


def test_the_seed_alone_decides_the_schedule() -> None:
    assert schedule(5, KINDS, 600, 5) == schedule(5, KINDS, 600, 5)
    assert schedule(5, KINDS, 600, 5) != schedule(6, KINDS, 600, 5)


@pytest.mark.parametrize(("seed", "nodes"), list(itertools.product(range(8), (2, 4, 5, 7))))
def test_faults_come_one_at_a_time_within_the_run_and_every_kind_occurs(
    seed: int, nodes: int
) -> None:
    duration = 400.0
    faults = schedule(seed, KINDS, duration, nodes)
    assert faults[0].start == WARMUP
    for before, after in itertools.pairwise(faults):
        assert after.start - before.end >= QUIET[0]
    assert faults[-1].end <= duration
    assert {f.kind for f in faults[: len(KINDS)]} == set(KINDS)
    for f in faults:
        low, high = DURATIONS[f.kind]
        assert low <= f.duration <= high
        assert all(0 <= k < nodes for k in f.nodes)
        if f.kind in ("kill", "pause", "slow"):
            assert 1 <= len(f.nodes) <= max(1, (nodes - 1) // 2)
        if f.kind == "disk":
            assert len(f.nodes) == 1


@pytest.mark.parametrize("seed", range(20))
def test_partitions_split_the_nodes_as_their_shape_says(seed: int) -> None:
    nodes = 5
    for f in schedule(seed, ("partition",), 300, nodes):
        members = [k for side in f.sides for k in side]
        assert len(members) == len(set(members))
        cut = {frozenset(pair) for pair in f.cuts()}
        if f.shape == "bridge":
            (bridge,) = f.nodes
            assert sorted([*members, bridge]) == list(range(nodes))
            assert all(bridge not in pair for pair in cut)
            assert len(cut) == len(f.sides[0]) * len(f.sides[1])
        else:
            assert sorted(members) == list(range(nodes))
        if f.shape == "isolated":
            assert f.sides[0] == f.nodes and not cut  # its link goes down instead
        if f.shape == "halves":
            assert sorted(len(side) for side in f.sides) == [nodes // 2, nodes - nodes // 2]
        if f.shape == "majority":
            assert 1 <= len(f.sides[0]) <= (nodes - 1) // 2


def test_every_partition_shape_occurs() -> None:
    shapes = {f.shape for f in schedule(1, ("partition",), 200, 5)}
    assert shapes == {"halves", "majority", "bridge", "isolated"}


def test_a_bad_choice_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown nemesis 'flood'"):
        schedule(1, ("kill", "flood"), 60, 5)
    with pytest.raises(ValueError, match="at least 2 nodes"):
        schedule(1, ("partition",), 60, 1)


# --- a client lane ----------------------------------------------------------------------

OPTIONS = ClientOptions(resubmit_after=5.0, window=3)


def test_a_lane_sends_new_nonces_up_to_its_window() -> None:
    lane = Lane(0)
    for nonce in range(3):
        assert lane.choose(0.0, True, OPTIONS) == nonce
        lane.answered(nonce, 0.0, ACK, None)
    assert lane.choose(1.0, True, OPTIONS) is None  # 3 uncommitted: the window is full
    lane.read(2)
    assert lane.choose(1.0, True, OPTIONS) == 3 and lane.sent == {2: 0.0}
    assert lane.choose(1.0, False, OPTIONS) is None  # the load is over


def test_a_lane_resubmits_the_oldest_uncommitted_transaction_after_a_while() -> None:
    lane = Lane(0)
    for nonce, at in ((0, 0.0), (1, 1.0)):
        lane.answered(nonce, at, ACK, None)
    assert lane.choose(4.9, True, OPTIONS) == 2
    assert lane.choose(5.0, True, OPTIONS) == 0
    lane.answered(0, 5.0, ACK, None)
    assert lane.choose(6.0, False, OPTIONS) == 1
    assert not lane.settled
    lane.read(2)
    assert lane.settled


@pytest.mark.parametrize(
    ("outcome", "reason", "moves_on"),
    [
        (ACK, None, True),
        (REFUSED, ALREADY_QUEUED, True),
        (REFUSED, NONCE_TOO_HIGH, False),
        (REFUSED, NONCE_TOO_LOW, False),
        (TIMEOUT, None, False),
        (ERROR, "ClientConnectorError", False),
    ],
)
def test_a_lane_moves_on_only_when_a_node_holds_its_transaction(
    outcome: str, reason: str | None, moves_on: bool
) -> None:
    lane = Lane(0, read_at=3.0)
    lane.answered(0, 1.0, outcome, reason)
    assert lane.next == (1 if moves_on else 0)
    assert lane.choose(1.5, True, OPTIONS) == (1 if moves_on else 0)
    assert (lane.read_at < 0) == (reason == NONCE_TOO_LOW)  # a used nonce: read it now


def test_a_read_nonce_only_grows_and_skips_what_is_committed() -> None:
    lane = Lane(0)
    lane.read(4)
    assert (lane.committed, lane.next) == (4, 4)
    lane.read(2)  # a node behind the others
    assert (lane.committed, lane.next) == (4, 4)
