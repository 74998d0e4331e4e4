"""The proposer policy: sortition by stake, or the permissioned round-robin order of PROTOCOL §7,
chosen in the genesis; in the core (validation, certificates) and in the simulator."""

from __future__ import annotations

import hashlib

import pytest
from _helpers import assert_safe
from _sandbox import CHAIN, Ledger, key

from echorand.core.consensus import Consensus, Tip
from echorand.core.events import MessagesReceived, Relay, ValidateBlock
from echorand.core.validate import CachingVerifier, NativeVerifier
from echorand.protocol.certificate import CertificateError, check_certificate
from echorand.protocol.committee import RoundContext
from echorand.protocol.leader import max_faulty, round_robin_order
from echorand.protocol.params import Params
from echorand.protocol.proposers import (
    RoundRobinPolicy,
    SortitionPolicy,
    next_authors,
    policy_for,
)
from echorand.protocol.signing import sign_block, sign_gc_block, sign_vote
from echorand.protocol.sortition import StakeTable
from echorand.sim import SimConfig, Simulation, run
from echorand.wire.messages import Block, Certificate

N = 10
F = max_faulty(N)  # 3
SEED = hashlib.sha256(b"proposers seed").digest()
PREV = hashlib.sha256(b"proposers genesis").digest()
TABLE = StakeTable([1_000 + 37 * a for a in range(N)])


def rr_params(policy: str = "round-robin", n_g: int = 20) -> Params:
    return Params(
        n_g=n_g, n_c=20, k=2, lam_ms=100, big_lam_ms=300, proposer_policy=policy, validators=N
    )


# --- the genesis parameters ------------------------------------------------------------------


def test_default_policy_is_sortition() -> None:
    params = Params()
    assert params.proposer_policy == "sortition" and params.validators == 0
    assert isinstance(policy_for(params), SortitionPolicy)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"proposer_policy": "round-robbin"}, "proposer_policy must be one of"),
        ({"proposer_policy": "round-robin"}, "needs validators >= 1"),
        ({"proposer_policy": "round-robin-seeded", "validators": -1}, "needs validators >= 1"),
        ({"validators": 4}, "under sortition it must be 0"),
    ],
)
def test_bad_policy_fields_are_refused(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Params(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(("name", "seeded"), [("round-robin", False), ("round-robin-seeded", True)])
def test_genesis_selects_the_round_robin_policy(name: str, seeded: bool) -> None:
    policy = policy_for(rr_params(name))
    assert isinstance(policy, RoundRobinPolicy)
    assert (policy.n_validators, policy.seeded, policy.lock_depth) == (N, seeded, F)


# --- the policies against their definitions ---------------------------------------------------


def test_sortition_policy_is_seats_of_step_one() -> None:
    seats = SortitionPolicy().producer_seats(TABLE, SEED, 7, 5, authors=(1, 2, 3))
    assert seats == TABLE.committee(SEED, 7, 1, 5)


@pytest.mark.parametrize("round", [1, 2, 3, 17, 1_000_003])
@pytest.mark.parametrize("authors", [(), (4,), (9, 0), (5, 1, 8, 2, 7)])
def test_round_robin_order_is_protocol_section_7(round: int, authors: tuple[int, ...]) -> None:
    locked = list(authors[-F:])
    plain = RoundRobinPolicy(N).producer_seats(TABLE, SEED, round, 20, authors)
    assert plain == round_robin_order(N, locked, round)
    seeded = RoundRobinPolicy(N, seeded=True).producer_seats(TABLE, SEED, round, 20, authors)
    assert seeded == round_robin_order(N, locked, round, seed=SEED)
    assert len(plain) == N - len(set(locked)) and not set(plain) & set(locked)


def test_producers_are_the_first_n_g_of_the_order() -> None:
    order = round_robin_order(N, [], 5)
    ctx = RoundContext(rr_params(n_g=3), 5, SEED, PREV, TABLE, chain=CHAIN)
    assert ctx.producer_seats() == order[:3]
    assert ctx.weights(1) == {v: 1 for v in order[:3]}
    assert [ctx.priority(v) for v in order] == [0, 1, 2, *[None] * (N - 3)]


def test_locked_validators_have_no_priority() -> None:
    authors = (6, 2, 9, 4)  # the last F = 3 are locked
    ctx = RoundContext(rr_params(), 8, SEED, PREV, TABLE, authors, chain=CHAIN)
    order = round_robin_order(N, [2, 9, 4], 8)
    assert all(ctx.priority(v) is None for v in (2, 9, 4))
    assert [ctx.priority(v) for v in order] == list(range(N - F))
    assert ctx.weight(1, 6) == 1  # authored four non-empty blocks ago: unlocked again


def test_tip_keeps_the_authors_of_the_last_f_non_empty_blocks() -> None:
    assert next_authors((1, 2, 3), 4, 3) == (2, 3, 4)
    assert next_authors((1, 2, 3), None, 3) == (1, 2, 3)
    assert next_authors((1, 2), 5, 0) == ()
    params = rr_params()
    tip = Tip(0, SEED, PREV)
    for r, producer in enumerate([3, None, 5, 1, None, 8], start=1):
        if producer is None:
            block = Block.empty(r, tip.block_hash)
        else:
            block = sign_block(key(producer), CHAIN, r, tip.block_hash, producer, tip.seed, ())
        tip = tip.after(block, params)
    assert tip.round == 6 and tip.authors == (5, 1, 8)
    assert tip.context(params, TABLE).authors == (5, 1, 8)
    # under sortition nothing is kept
    assert Tip(0, SEED, PREV).after(block, Params()).authors == ()


# --- in the core: validation and certificates -------------------------------------------------


def observer(tip: Tip, policy: str = "round-robin") -> Consensus:
    """A node holding no account: it only validates, counts and relays."""
    node = Consensus(rr_params(policy), {}, Ledger(TABLE), CachingVerifier(NativeVerifier()), tip)
    node.start(0)
    return node


def gc_block(tip: Tip, producer: int):
    block = sign_block(key(producer), CHAIN, tip.round + 1, tip.block_hash, producer, tip.seed, ())
    return sign_gc_block(key(producer), CHAIN, producer, block)


@pytest.mark.parametrize("policy", ["round-robin", "round-robin-seeded"])
def test_block_from_a_locked_validator_is_dropped(policy: str) -> None:
    tip = Tip(4, SEED, PREV, authors=(7, 0, 3), chain=CHAIN)
    node = observer(tip, policy)
    node.handle(MessagesReceived(10, (gc_block(tip, 3),)))
    assert node.stats["not a producer"] == 1
    first = node.round.ctx.producer_seats()[0]  # type: ignore[union-attr]
    msg = gc_block(tip, first)
    assert node.handle(MessagesReceived(11, (msg,))) == [Relay(msg), ValidateBlock(msg.block)]
    assert node.round.gc.proposals.keys() == {first}  # type: ignore[union-attr]


def test_certificate_for_a_locked_validators_block_is_refused() -> None:
    tip = Tip(4, SEED, PREV, authors=(7, 0, 3), chain=CHAIN)
    ctx = tip.context(rr_params(), TABLE)
    block = gc_block(tip, 3).block
    signers = sorted(ctx.weights(4))
    votes = [sign_vote(key(a), CHAIN, 5, 4, a, 0, (block.hash, 3)) for a in signers]
    cert = Certificate(5, 4, 0, block.hash, 3, [(v.sender, v.cert_sig) for v in votes])
    verifier = CachingVerifier(NativeVerifier())
    with pytest.raises(CertificateError, match="producer 3 is not in A_1"):
        check_certificate(cert, block, ctx, Ledger(TABLE).public_key, verifier)
    # the same votes for an unlocked validator's block certify it
    ok = gc_block(tip, ctx.producer_seats()[0]).block
    votes = [sign_vote(key(a), CHAIN, 5, 4, a, 0, (ok.hash, ok.producer)) for a in signers]
    cert = Certificate(5, 4, 0, ok.hash, ok.producer, [(v.sender, v.cert_sig) for v in votes])
    check_certificate(cert, ok, ctx, Ledger(TABLE).public_key, verifier)


# --- in the simulator ---------------------------------------------------------------------------


def authors_of(result, sim: Simulation) -> tuple[str, list[int]]:
    """The chain as a string ('B' Byzantine author, 'h' honest, '.' empty) and its authors."""
    chain = [block for block, _ in result.chains[0]]
    pattern = "".join(
        "." if b.is_empty else "B" if b.producer in sim.byzantine_accounts else "h" for b in chain
    )
    return pattern, [b.producer for b in chain if not b.is_empty]


def adversary(policy: str, seed: int, rounds: int = 24) -> SimConfig:
    """Ten validators, one account each, three of them Byzantine (F = 3). In every round where
    a Byzantine validator holds a producer seat, the adversary slows the honest producers past
    2λ, so that a Byzantine validator leads whenever one can."""
    return SimConfig(
        nodes=N,
        accounts=1,
        rounds=rounds,
        seed=seed,
        byzantine=0.34,
        behaviour="honest",
        slow_honest_producers_ms=300,
        proposers=policy,
    )


@pytest.mark.parametrize("policy", ["round-robin", "round-robin-seeded"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_honest_author_within_f_plus_1_non_empty_blocks(policy: str, seed: int) -> None:
    config = adversary(policy, seed)
    sim = Simulation(config)
    assert len(sim.byzantine_accounts) == F
    result = sim.run()
    assert result.forks == [] and result.bad_certificates == []
    assert result.committed == config.rounds
    pattern, authors = authors_of(result, sim)
    runs = pattern.replace(".", "").split("h")
    assert max(len(run) for run in runs) <= F, pattern  # the F + 1 bound
    assert "h" in pattern and "B" * F in pattern.replace(".", ""), pattern  # it is reached
    # any F + 1 consecutive non-empty blocks have F + 1 distinct authors
    assert all(len(set(authors[i : i + F + 1])) == F + 1 for i in range(len(authors) - F))


def test_under_sortition_the_same_adversary_authors_longer_runs() -> None:
    """Nothing locks an author under sortition: the bound above comes from the policy."""
    sim = Simulation(adversary("sortition", 1))
    pattern, _ = authors_of(sim.run(), sim)
    assert "B" * (F + 1) in pattern.replace(".", ""), pattern


@pytest.mark.parametrize("behaviour", ["equivocate-block", "equivocate-vote", "random-vote"])
@pytest.mark.parametrize("policy", ["round-robin", "round-robin-seeded"])
def test_round_robin_never_forks(policy: str, behaviour: str) -> None:
    result = run(
        SimConfig(
            nodes=7,
            accounts=2,
            rounds=6,
            seed=4,
            byzantine=0.3,
            behaviour=behaviour,
            proposers=policy,
            loss=0.05,
        )
    )
    assert_safe(result, min_committed=6)
    assert result.committed == 6
    assert result.summary()["proposers"] == policy


def test_all_honest_round_robin_commits_blocks_by_the_order() -> None:
    config = SimConfig(nodes=7, accounts=1, rounds=8, seed=6, proposers="round-robin")
    result = run(config)
    assert result.forks == [] and result.committed == 8
    policy = RoundRobinPolicy(7)
    tip = Simulation(config).genesis
    for block, _ in result.chains[0]:
        # every node is honest and quick: the first of the order leads
        assert not block.is_empty
        assert block.producer == policy.order(tip.seed, block.round, tip.authors)[0]
        tip = tip.after(block, config.params())


def test_command_line_runs_a_round_robin_network(capsys: pytest.CaptureFixture[str]) -> None:
    import argparse
    import json

    from echorand.sim.command import add_consensus_arguments, run_consensus

    parser = argparse.ArgumentParser()
    add_consensus_arguments(parser)
    argv = ["--nodes", "5", "--accounts", "1", "--rounds", "3", "--proposers", "round-robin-seeded"]
    assert run_consensus(parser.parse_args([*argv, "--slow-honest-ms", "300", "--json"])) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["proposers"] == "round-robin-seeded" and summary["committed"] == 3
    for bad in (["--proposers", "lottery"], ["--slow-honest-ms", "-1"]):
        with pytest.raises(SystemExit):
            parser.parse_args(bad)
