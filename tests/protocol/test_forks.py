"""Forks (PROTOCOL §6; docs/protocol.md §10): none within the timing assumption; beyond it,
an adversarial scheduler makes tentative forks that the fork choice heals, and never two
final blocks at one round. And the fork-choice plan itself, on hand-made chains."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from _chain import pattern_chain as chain

from echorand.protocol import forks
from echorand.sim.byzantine import BEHAVIOURS
from echorand.sim.command import violations
from echorand.sim.simulation import SimConfig, run
from echorand.wire.messages import Block, Certificate

SECURE = dict(nodes=10, accounts=2, rounds=6, byzantine=0.2, n_c=1000, max_time_ms=200_000)
"""Committees that pass the genesis check against f = 1/5 (N_c = 1000), a fifth of the
stake Byzantine (whole nodes, up to that fraction)."""


@pytest.mark.parametrize("behaviour", BEHAVIOURS[1:])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_no_fork_within_the_timing_assumption_at_f(behaviour: str, seed: int) -> None:
    result = run(SimConfig(**SECURE, seed=seed, behaviour=behaviour))
    s = result.summary()
    assert s["byzantine_stake"] > 0.1, "precondition: Byzantine stake in play"
    assert s["committed"] >= SECURE["rounds"], "the network makes progress"
    assert s["forks"] == [] and s["final_forks"] == [] and s["halted"] == 0
    assert s["final_blocks"] > 0 and result.bad_certificates == []
    assert violations(s) == []


SPLIT = dict(nodes=10, accounts=2, rounds=8, byzantine=0.2, adversary="split-decision")


def test_the_asynchrony_case_forks_only_tentatively_and_heals() -> None:
    """Issue 2/8's case: Byzantine 20 %, an adversary that holds step-3 votes from a quarter
    of the stake and step-4 votes from all but a few honest nodes. Either no fork, or a
    tentative one that the fork choice heals; never a final fork."""
    summaries = [
        run(SimConfig(**SPLIT, seed=seed, max_time_ms=200_000)).summary() for seed in range(1, 7)
    ]
    forked = [s for s in summaries if s["forks"]]
    assert forked, "precondition: the scheduler makes a fork in some runs"
    for s in summaries:
        assert s["final_forks"] == [] and s["unhealed"] == [] and s["halted"] == 0
        assert s["bad_certificates"] == [] and violations(s) == []
    for s in forked:
        assert s["rollbacks"] >= 1
        assert s["converged_after_rounds"] is not None and s["converged_after_rounds"] <= 10


# --- the plan, on hand-made chains ----------------------------------------------------------


@dataclass
class Chain:
    blocks: list[tuple[Block, Certificate]]
    final_round: int = 0
    genesis: bytes = field(default=bytes(32))

    @property
    def tip(self) -> int:
        return len(self.blocks)

    def hash(self, round: int) -> bytes | None:
        if round == 0:
            return self.genesis
        return self.blocks[round - 1][0].hash if round <= self.tip else None

    def block(self, round: int) -> Block | None:
        return self.blocks[round - 1][0] if 1 <= round <= self.tip else None

    def certificate(self, round: int) -> Certificate | None:
        return self.blocks[round - 1][1] if 1 <= round <= self.tip else None


def test_the_plan_keeps_ours_or_takes_theirs() -> None:
    common = chain("ab")
    tip = common[-1][0].hash
    ours = Chain(common + chain(".c", tip, 3))
    theirs = common + chain("de", tip, 3)
    plan = forks.plan(ours, theirs[1:])  # from round 2: round 2 is shared
    assert plan is not None and plan.fork_round == 3 and plan.choice is forks.Choice.THEIRS
    assert [b.round for b, _ in plan.theirs] == [3, 4] and plan.rollback_to == 2
    assert forks.plan(Chain(common + chain("de", tip, 3)), ours.blocks).choice is forks.Choice.OURS
    ours.final_round = 3  # our block 3 is final: their chain is never followed, whatever it is
    below = forks.plan(ours, theirs)
    assert below is not None and below.choice is forks.Choice.OURS and below.below_final
    assert forks.plan(Chain(common), theirs) is None  # theirs extends ours: plain sync
    with pytest.raises(forks.ForkError, match="does not extend"):
        forks.plan(Chain(chain("x")), theirs[1:])


def test_a_proven_final_block_wins_and_two_of_them_halt() -> None:
    common = chain("ab")
    tip = common[-1][0].hash
    ours = Chain(common + chain("cd", tip, 3))  # more non-empty blocks than theirs
    theirs = common + chain("..", tip, 3)
    assert forks.plan(ours, theirs).choice is forks.Choice.OURS  # the whitepaper's rule
    assert forks.plan(ours, theirs, their_final=2).choice is forks.Choice.OURS  # before the fork
    won = forks.plan(ours, theirs, their_final=4)
    assert won is not None and won.choice is forks.Choice.THEIRS and not won.below_final
    ours.final_round = 3  # both chains final after they part: the adversary exceeded f
    halt = forks.plan(ours, theirs, their_final=4)
    assert halt is not None and halt.choice is forks.Choice.HALT and halt.below_final


def test_two_nodes_always_pick_the_same_chain() -> None:
    tip = chain("a")[-1][0].hash
    for left, right in (("b.", ".b"), ("bc", "de"), ("..b", ".c."), ("b", "c"), ("b..", "c")):
        one, two = chain(left, tip, 2), chain(right, tip, 2)
        common = chain("a")
        a = forks.plan(Chain(common + one), common + two)
        b = forks.plan(Chain(common + two), common + one)
        assert a is not None and b is not None
        assert {a.choice, b.choice} == {forks.Choice.OURS, forks.Choice.THEIRS}, (left, right)
