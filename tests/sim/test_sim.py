"""The simulator: safety under Byzantine behaviours, liveness, partitions, crashes, determinism."""

from __future__ import annotations

import os
import secrets
from dataclasses import replace
from itertools import pairwise

import pytest
from _helpers import assert_safe

from echorand.sim import SimConfig, run
from echorand.sim.byzantine import BEHAVIOURS

SMALL = {"nodes": 7, "accounts": 3, "n_c": 60, "n_g": 10}


@pytest.mark.parametrize("behaviour", [b for b in BEHAVIOURS if b != "honest"])
@pytest.mark.parametrize("seed", range(1, 7))
def test_no_fork_with_30_percent_byzantine_stake(behaviour: str, seed: int) -> None:
    result = run(
        SimConfig(nodes=10, accounts=3, rounds=3, seed=seed, byzantine=0.3, behaviour=behaviour)
    )
    assert 0.2 <= result.byzantine_stake <= 0.3
    assert_safe(result, min_committed=3)


RANDOM_SEEDS = int(os.environ.get("ECHORAND_RANDOM_SEEDS", "50"))
"""Fresh seeds a `random_seeds` run tries (`ECHORAND_RANDOM_SEEDS=N`)."""


@pytest.mark.random_seeds
def test_no_fork_with_30_percent_byzantine_stake_over_fresh_random_seeds() -> None:
    """The safety scenario above over RANDOM_SEEDS fresh seeds (not in the default run:
    `pytest -m random_seeds -s tests/test_sim.py`). Each seed is printed before its run, and
    a failure names it: `SimConfig(seed=...)` replays it."""
    behaviours = [b for b in BEHAVIOURS if b != "honest"]
    for i in range(RANDOM_SEEDS):
        seed, behaviour = secrets.randbits(32), behaviours[i % len(behaviours)]
        print(f"seed {seed} {behaviour}", flush=True)
        config = SimConfig(
            nodes=10, accounts=3, rounds=3, seed=seed, byzantine=0.3, behaviour=behaviour
        )
        result = run(config)
        assert 0.0 < result.byzantine_stake <= 0.3, f"seed {seed}: {result.byzantine_stake}"
        try:
            assert_safe(result, min_committed=3)
        except AssertionError as e:
            raise AssertionError(f"seed {seed}, {behaviour}: {e}") from e
    print(f"{RANDOM_SEEDS} fresh seeds: no fork, every run committed 3 blocks")


@pytest.mark.parametrize("behaviour", ["equivocate-block", "equivocate-vote"])
@pytest.mark.parametrize("seed", range(1, 3))
def test_no_fork_with_vrf_seeds_and_30_percent_byzantine_stake(behaviour: str, seed: int) -> None:
    """seed_mode "vrf": every leader's block carries a VRF proof that every node checks (a
    Byzantine equivocating producer proves the same input twice: the same proof)."""
    config = SimConfig(
        nodes=10, accounts=3, rounds=3, seed=seed, byzantine=0.3, behaviour=behaviour
    )
    result = run(replace(config, seed_mode="vrf"))
    assert_safe(result, min_committed=3)
    assert result.committed == 3
    proposed = [block for chain in result.chains for block, _ in chain if not block.is_empty]
    assert proposed and all(len(block.seed_sig or b"") == 80 for block in proposed)
    assert result.summary()["seed_mode"] == "vrf"


@pytest.mark.parametrize("seed", range(1, 4))
def test_no_fork_with_loss_and_byzantine_votes(seed: int) -> None:
    result = run(
        SimConfig(
            **SMALL, rounds=3, seed=seed, byzantine=0.25, behaviour="equivocate-vote", loss=0.1
        )
    )
    assert_safe(result, min_committed=3)


@pytest.mark.parametrize("seed", range(1, 4))
def test_all_honest_every_round_commits_a_non_empty_block(seed: int) -> None:
    result = run(SimConfig(**SMALL, rounds=4, seed=seed))
    assert_safe(result, min_committed=4)
    assert result.committed == 4
    for chain in result.chains:
        assert all(not block.is_empty for block, _ in chain)
        assert all(cert.step == 4 and cert.b == 0 for _, cert in chain)


def test_no_producer_online_ends_each_round_in_a_certified_empty_block() -> None:
    config = SimConfig(**SMALL, rounds=3, seed=5, mute_producers=True)
    result = run(config)
    assert_safe(result, min_committed=3)
    assert result.committed == 3
    for chain in result.chains:
        assert all(block.is_empty for block, _ in chain)
        assert all(cert.b == 1 or cert.value == (bytes(32), 0) for _, cert in chain)
        # The empty block is certified by mu at the latest (here: step 5's votes, §8).
        assert all(cert.step < config.params().mu for _, cert in chain)


def test_chain_moves_on_after_a_partition_heals() -> None:
    # neither side holds more than t_h of the stake: nothing is decided while cut off
    result = run(SimConfig(**SMALL, rounds=4, seed=2, partition=(0.5, 500, 6_000)))
    assert_safe(result, min_committed=4)
    assert result.committed == 4
    assert result.sim_time_ms > 6_000


def test_crashed_node_restarts_and_catches_up() -> None:
    result = run(SimConfig(**SMALL, rounds=6, seed=3, crashes=((1, 300, 2_500),)))
    assert_safe(result, min_committed=6)  # the run goes on at least until the restart
    restarted = result.chains[1]
    assert len(restarted) >= 6  # it caught up (from certified blocks) and kept up


def test_low_participation_commits_nothing_and_never_forks() -> None:
    """Online stake below t_h of the committee: no step gathers t_h votes, so nothing is
    certified in 20 s (this seed), and the run stalls without a fork. No progress is the
    expected result here, asserted as such."""
    config = SimConfig(**SMALL, rounds=2, seed=1, participation=0.5, max_time_ms=20_000)
    params = config.params()
    result = run(config)
    assert result.online_stake < params.t_h / params.n_c
    assert_safe(result, min_committed=0)
    assert result.committed == 0 and result.chains and all(c == [] for c in result.chains)
    assert result.sim_time_ms == 20_000  # it ran to the end, stalled


def test_one_seed_reproduces_a_run_exactly() -> None:
    config = SimConfig(**SMALL, rounds=3, seed=9, byzantine=0.2, behaviour="random-vote", loss=0.05)
    first, second = run(config), run(config)
    assert first.summary() == second.summary()
    assert [[b.hash for b, _ in c] for c in first.chains] == [
        [b.hash for b, _ in c] for c in second.chains
    ]
    assert run(SimConfig(**SMALL, rounds=3, seed=10)).summary() != first.summary()


@pytest.mark.parametrize("behaviour", ["honest", "equivocate-block"])
def test_every_block_after_a_proposed_one_carries_its_certificate(behaviour: str) -> None:
    """The core's producers carry CERT_{r-1} (§16), honest or equivocating: no honest node
    drops a block for its carried certificate, and each carried one is for the block before."""
    byzantine = 0.0 if behaviour == "honest" else 0.3
    config = SimConfig(**SMALL, rounds=5, seed=2, byzantine=byzantine, behaviour=behaviour)
    result = run(config)
    assert_safe(result, min_committed=5)
    assert result.dropped.get("bad carried certificate", 0) == 0
    carried = 0
    for chain in result.chains:
        for (before, _), (block, _) in pairwise(chain):
            if block.is_empty or before.is_empty:
                assert block.is_empty or block.prev_cert is None
                continue
            cert = block.prev_cert
            assert cert is not None and cert.value == (before.hash, before.producer)
            carried += 1
    assert carried > 0
