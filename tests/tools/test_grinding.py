"""`echorand sim grinding`: the native study follows the protocol, and shows what grinding gains.

The per-round checks rebuild each round in Python from the protocol's own
pieces (`StakeTable.committee`, `seeds.next_seed`, `crypto.verify`,
`echorand.wire.vrf`), the grinder's choice included. The statistical checks run
on fixed seeds (deterministic) with margins of several standard errors of
the exact model, so that they hold for any seed.
"""

from __future__ import annotations

import hashlib
import json
import random

import _ed25519_model as ed_model
import pytest

from echorand._native import GrindingStudy, devnet_seeds, grinding_signatures
from echorand.protocol.seeds import next_seed
from echorand.protocol.sortition import StakeTable
from echorand.sim.stats import binomial_pmf
from echorand.tools.cli import main as cli_main
from echorand.tools.studies.grinding import (
    GrindingConfig,
    World,
    expected_shares,
    max_moments,
    run_study,
)
from echorand.wire import vrf
from echorand.wire.crypto import Keypair, verify, verify_batch

GENESIS = hashlib.sha256(b"genesis").digest()
Q0 = hashlib.sha256(b"q0").digest()


def _payload(round: int, prev: bytes) -> bytes:
    """PROTOCOL §4 (revision 2): the bytes a leader signs or proves for Q[round]."""
    return b"echorand/seed\x00" + GENESIS + round.to_bytes(8, "big") + prev


def _world(n: int = 60, seed: int = 3) -> tuple[StakeTable, bytes, list[int]]:
    rng = random.Random(seed)
    table = StakeTable([rng.randrange(1000, 2000) for _ in range(n)])
    coalition = sorted(rng.sample(range(n), n // 4))
    return table, devnet_seeds(bytes(32), n), coalition


def _study(kind: str, k: int, objective: str, **kw: object) -> GrindingStudy:
    table, secrets, coalition = _world()
    options = {"step": 2, "seats": 40, "genesis_hash": GENESIS, "seed": Q0} | kw
    return GrindingStudy(
        table, coalition, secrets, kind=kind, candidates=k, objective=objective, **options
    )


def test_grinding_signatures_all_verify_are_distinct_and_the_first_is_rfc8032s() -> None:
    key = Keypair.from_seed(bytes(range(32)))
    message = _payload(7, Q0)
    blob = grinding_signatures(key.seed, message, 50)
    sigs = [blob[i : i + 64] for i in range(0, len(blob), 64)]
    assert len(sigs) == len(set(sigs)) == 50
    assert sigs[0] == key.sign(message)
    assert verify_batch([key.public_key] * 50, [message] * 50, sigs) == [True] * 50
    assert all(ed_model.verify_zip215(key.public_key, message, s) for s in sigs[:3])


@pytest.mark.parametrize("objective", ["lead", "seats"])
def test_each_round_follows_the_protocol_and_the_grinder_keeps_its_best_seed(
    objective: str,
) -> None:
    table, secrets, coalition = _world()
    members, k = set(coalition), 8
    study = _study("signature", k, objective)
    prev, ground = Q0, 0
    for r, (leader, sig, seed) in enumerate(study.trace(40), start=1):
        assert leader == table.committee(prev, r, 1, 1)[0]
        key = Keypair.from_seed(secrets[32 * leader : 32 * leader + 32])
        message = _payload(r, prev)
        assert verify(key.public_key, message, sig)
        assert seed == next_seed(prev, r, sig)
        if leader in members:
            ground += 1
            assert sig == _best_candidate(table, members, key, message, r, prev, k, objective)
        else:
            assert sig == key.sign(message)
        prev = seed
    assert ground == study.ground_rounds > 0
    assert study.seed == prev


def _best_candidate(
    table: StakeTable,
    members: set[int],
    key: Keypair,
    message: bytes,
    r: int,
    prev: bytes,
    k: int,
    objective: str,
) -> bytes:
    """The grinder's choice, recomputed: best (lead, seats) or seats for round r + 1, lowest j."""
    blob = grinding_signatures(key.seed, message, k)
    scored = []
    for j in range(k):
        sig = blob[64 * j : 64 * j + 64]
        q = next_seed(prev, r, sig)
        seats = sum(a in members for a in table.committee(q, r + 1, 2, 40))
        lead = table.committee(q, r + 1, 1, 1)[0] in members
        score = (lead, seats) if objective == "lead" else (seats,)
        scored.append((score, -j, sig))
    return max(scored)[2]


def test_vrf_rounds_publish_the_unique_output_of_the_seed_payload() -> None:
    table, secrets, _ = _world()
    study = _study("vrf", 64, "lead")
    prev = Q0
    for r, (leader, beta, seed) in enumerate(study.trace(12), start=1):
        assert leader == table.committee(prev, r, 1, 1)[0]
        secret = secrets[32 * leader : 32 * leader + 32]
        proof = vrf.prove(secret, _payload(r, prev))
        assert vrf.verify(Keypair.from_seed(secret).public_key, _payload(r, prev), proof) == beta
        assert seed == hashlib.sha256(beta + r.to_bytes(8, "big")).digest()
        prev = seed
    assert study.ground_rounds == 0


def test_a_vrf_run_does_not_depend_on_k() -> None:
    one, many = _study("vrf", 1, "lead"), _study("vrf", 4096, "lead")
    one.run(200)
    many.run(200)
    assert (one.seed, one.leaderships, one.coalition_seats) == (
        many.seed,
        many.leaderships,
        many.coalition_seats,
    )


def test_resuming_gives_the_same_seeds_as_one_run() -> None:
    whole, parts = _study("signature", 16, "lead"), _study("signature", 16, "lead")
    whole.run(60)
    for n in (1, 19, 40):
        parts.run(n)
    assert (whole.seed, whole.leaderships, whole.coalition_seats, whole.ground_rounds) == (
        parts.seed,
        parts.leaderships,
        parts.coalition_seats,
        parts.ground_rounds,
    )


# --- what grinding gains ----------------------------------------------------------------------


def _within(measured: float, expected: float, se: float, z: float = 5.0) -> bool:
    return abs(measured - expected) <= z * se


def test_the_vrf_kind_shows_no_gain_within_sampling_error() -> None:
    config = GrindingConfig(
        fractions=(0.2, 0.33),
        candidates=(4096,),
        kinds=("vrf",),
        rounds=3000,
        accounts=200,
        seats=100,
    )
    result = run_study(config)
    assert len(result.runs) == 2
    for run in result.runs:
        f, e = run.coalition_stake, run.expected
        assert run.candidates == 1 and run.ground_rounds == 0
        assert e.leader_share == pytest.approx(f) and e.seat_share == pytest.approx(f)
        assert _within(run.leader_share, f, e.leader_se, z=4)
        assert _within(run.seat_share, f, e.seat_se, z=4)


def test_the_signature_kind_gains_leaderships_that_grow_with_k() -> None:
    config = GrindingConfig(
        fractions=(0.2,),
        candidates=(1, 4, 16),
        kinds=("signature",),
        objective="lead",
        rounds=2000,
        accounts=200,
        seats=50,
    )
    runs = run_study(config).runs
    shares = [r.leader_share for r in runs]
    for run in runs:
        assert _within(run.leader_share, run.expected.leader_share, run.expected.leader_se)
    # The model: 20 %, 33 %, 88 %; the steps are many standard errors (about 0.02) wide.
    assert shares[1] - shares[0] > 0.06
    assert shares[2] - shares[1] > 0.3
    assert runs[0].ground_rounds == 0 < runs[1].ground_rounds < runs[2].ground_rounds


def test_the_signature_kind_gains_seats_that_grow_with_k() -> None:
    config = GrindingConfig(
        fractions=(0.2,),
        candidates=(1, 16, 256),
        kinds=("signature",),
        objective="seats",
        rounds=1500,
        accounts=200,
        seats=50,
    )
    runs = run_study(config).runs
    for run in runs:
        assert _within(run.seat_share, run.expected.seat_share, run.expected.seat_se)
        # Grinding for seats leaves who leads alone.
        assert _within(run.leader_share, run.coalition_stake, run.expected.leader_se)
    # The model: 20.0 %, 22.1 %, 23.4 %, each with a standard error near 0.2 points.
    assert runs[1].seat_share - runs[0].seat_share > 0.01
    assert runs[2].seat_share - runs[1].seat_share > 0.004


# --- the exact model --------------------------------------------------------------------------


def test_the_max_of_one_draw_is_the_draw() -> None:
    pmf = binomial_pmf(30, 0.3)
    mean, var = max_moments(pmf, 1)
    assert mean == pytest.approx(9.0) and var == pytest.approx(30 * 0.3 * 0.7)


def test_the_max_of_two_draws_matches_enumeration() -> None:
    pmf = binomial_pmf(6, 0.4)
    pairs = [(max(a, b), pmf[a] * pmf[b]) for a in range(7) for b in range(7)]
    mean = sum(m * p for m, p in pairs)
    second = sum(m * m * p for m, p in pairs)
    assert max_moments(pmf, 2) == pytest.approx((mean, second - mean * mean))


def test_the_lead_model_is_the_markov_chain_s_stationary_share() -> None:
    f, k = 0.2, 16
    e = expected_shares(f, k, "lead", 50, 100_000)
    assert e.leader_share == pytest.approx(f / (f + (1 - f) ** k), rel=1e-3)
    assert expected_shares(f, 1, "lead", 50, 10).leader_share == pytest.approx(f)


# --- the command ------------------------------------------------------------------------------

SMALL = [
    "--fractions",
    "0.2",
    "0.3",
    "--candidates",
    "1",
    "8",
    "--rounds",
    "60",
    "--accounts",
    "80",
    "--seats",
    "30",
]

RUN_FIELDS = {
    "kind",
    "objective",
    "fraction",
    "coalition_stake",
    "candidates",
    "rounds",
    "seats",
    "step",
    "leaderships",
    "leader_share",
    "leader_gain",
    "expected_leader_share",
    "leader_se",
    "coalition_seats",
    "seat_share",
    "seat_gain",
    "expected_seat_share",
    "seat_se",
    "ground_rounds",
    "seconds",
}


def test_json_is_one_object_with_every_field(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["sim", "grinding", *SMALL, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"config", "runs", "seconds"}
    assert set(out["config"]) == set(GrindingConfig().to_json())
    assert [(r["kind"], r["fraction"], r["candidates"]) for r in out["runs"]] == [
        ("signature", 0.2, 1),
        ("signature", 0.2, 8),
        ("vrf", 0.2, 1),
        ("signature", 0.3, 1),
        ("signature", 0.3, 8),
        ("vrf", 0.3, 1),
    ]
    for run in out["runs"]:
        assert set(run) == RUN_FIELDS
        assert run["leaderships"] == round(run["leader_share"] * 60)


def test_the_same_seed_gives_the_same_run_and_another_seed_another() -> None:
    config = GrindingConfig(candidates=(1, 8), rounds=50, accounts=80, seats=30, seed=4)

    def counts(c: GrindingConfig) -> list[tuple[int, int, int]]:
        return [(r.leaderships, r.coalition_seats, r.ground_rounds) for r in run_study(c).runs]

    assert counts(config) == counts(config)
    other = GrindingConfig(candidates=(1, 8), rounds=50, accounts=80, seats=30, seed=5)
    assert counts(other) != counts(config)


def test_the_table_and_the_png_are_written(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    png = tmp_path / "figs" / "grinding.png"
    assert (
        cli_main(["sim", "grinding", *SMALL, "--seed-kind", "signature", "--plot", str(png)]) == 0
    )
    out = capsys.readouterr().out
    assert "seed grinding, objective lead" in out and "signature" in out and "vrf" not in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 10_000


def test_the_world_s_coalition_fits_its_fraction() -> None:
    world = World.of(500, seed=9)
    members, stake = world.coalition(0.33)
    total = sum(world.balances)
    assert stake == sum(world.balances[a] for a in members) / total
    assert 0.33 - 2000 / total < stake <= 0.33
    assert world.coalition(0.1)[0] == members[: len(world.coalition(0.1)[0])]


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: GrindingConfig(fractions=(1.5,)), ValueError, "fractions must be in"),
        (lambda: GrindingConfig(candidates=(0,)), ValueError, "candidates must be at least 1"),
        (lambda: GrindingConfig(objective="win"), ValueError, "objective must be one of"),
        (lambda: GrindingConfig(step=1), ValueError, "step >= 2"),
        (lambda: _study("hash", 1, "lead"), ValueError, "kind must be 'signature' or 'vrf'"),
        (lambda: _study("vrf", 1, "win"), ValueError, "objective must be 'seats' or 'lead'"),
        (lambda: _study("vrf", 0, "lead"), ValueError, "candidates must be in"),
        (lambda: _study("vrf", 1, "lead", step=1), ValueError, "step must be in"),
        (lambda: _study("vrf", 1, "lead", seed=b"x"), ValueError, "seed must be 32 bytes"),
        (
            lambda: GrindingStudy(
                _world()[0],
                [60],
                _world()[1],
                kind="vrf",
                candidates=1,
                objective="lead",
                step=2,
                seats=5,
                genesis_hash=GENESIS,
                seed=Q0,
            ),
            ValueError,
            "coalition account 60 is not in the table of 60 accounts",
        ),
        (
            lambda: GrindingStudy(
                _world()[0],
                [],
                b"x" * 32,
                kind="vrf",
                candidates=1,
                objective="lead",
                step=2,
                seats=5,
                genesis_hash=GENESIS,
                seed=Q0,
            ),
            ValueError,
            "secrets must be 32 bytes per account",
        ),
    ],
)
def test_bad_arguments_are_refused_with_their_name(call, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        call()
