"""The participation sweep on a small configuration: its JSON, its sanity, its determinism
across worker counts, and the command."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from fractions import Fraction
from math import comb
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from echorand.sim import SimConfig, Simulation
from echorand.tools.studies.participation import (
    WHITEPAPER,
    SweepConfig,
    SweepResult,
    add_participation_arguments,
    run_participation,
    run_sweep,
    step_pass_probability,
)
from echorand.tools.studies.participation_plots import COLORS, DPI, SIZE, figure, save_plot

SMALL = SweepConfig(
    points=(1.0, 0.3),
    seeds=2,
    rounds=3,
    max_time_s=15.0,
    nodes=4,
    accounts=5,
    n_c=30,
    n_g=5,
    lam_ms=100,
    big_lam_ms=300,
    latency_ms=20,
)
"""t_h = 20 of 30 seats: at 30 % online a step passes with probability ~1e-6."""


@pytest.fixture(scope="module")
def small():
    return run_sweep(SMALL, jobs=1)


def test_json_is_one_object_per_point_with_the_promised_fields(small) -> None:
    rows = small.to_json()
    assert [row["participation"] for row in rows] == [1.0, 0.3]
    for row in rows:
        assert {"participation", "empty_fraction", "block_time_s", "variant"} <= row.keys()
        assert row["variant"] == "plain" and row["runs"] == 2
    json.dumps(rows)  # plain JSON


def test_full_participation_commits_every_round_without_an_empty_block(small) -> None:
    full = small.variants["plain"][0]
    assert full.online_stake == 1.0
    assert full.committed == SMALL.seeds * SMALL.rounds and full.stalled_runs == 0
    assert full.empty_fraction == 0.0 and full.fast_path == 1.0
    # every round takes at least 2λ (the leader is chosen then) and far less than the cap
    assert 2 * SMALL.lam_ms / 1000 < full.block_time_s < 2.0  # type: ignore[operator]
    assert full.block_time_over_s is None


def test_below_the_threshold_nothing_is_certified_and_the_runs_stall(small) -> None:
    low = small.variants["plain"][1]
    assert 0.3 <= low.online_stake <= 0.31  # offline stake stays within 70 %, by account
    assert low.committed == 0 and low.stalled_runs == SMALL.seeds
    assert low.empty_fraction is None and low.block_time_s is None
    assert low.block_time_over_s == SMALL.max_time_s
    assert low.step_pass < 1e-5
    assert small.safe


def test_results_do_not_depend_on_the_number_of_workers(small) -> None:
    parallel = run_sweep(SMALL, jobs=2)
    assert parallel.jobs == 2
    assert parallel.runs == small.runs
    assert parallel.to_json() == small.to_json()


def test_progress_reaches_every_round() -> None:
    seen: list[tuple[int, int]] = []
    config = SweepConfig(**{**_fields(SMALL), "points": (1.0,), "seeds": 1})
    run_sweep(config, jobs=1, on_progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (config.rounds, config.rounds)
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)


def _fields(config: SweepConfig) -> dict[str, object]:
    return {name: getattr(config, name) for name in config.__dataclass_fields__}


def test_offline_accounts_meet_the_fraction_and_keep_every_node_up() -> None:
    config = SMALL.sim_config("plain", 0.65, 1)
    sim = Simulation(config)
    assert sim.offline == set()
    total = sum(sim.balances)
    online = total - sum(sim.balances[a] for a in sim.offline_accounts)
    assert online / total == pytest.approx(sim.online_stake)
    assert 0.65 <= sim.online_stake <= 0.65 + max(sim.balances) / total
    for node in sim.nodes:
        assert not set(node.keys) & sim.offline_accounts
    # by nodes, the fraction is met only to within a node's stake
    by_node = Simulation(SimConfig(**{**_sim_fields(config), "offline": "nodes"}))
    assert by_node.offline_accounts == frozenset() and by_node.offline


def _sim_fields(config: SimConfig) -> dict[str, object]:
    return {name: getattr(config, name) for name in config.__dataclass_fields__}


def test_step_pass_probability_is_the_binomial_tail() -> None:
    def exact(p: Fraction, n: int, t: int) -> Fraction:
        return sum(
            (comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(t + 1, n + 1)), Fraction(0)
        )

    for p in (Fraction(1, 2), Fraction(13, 20), Fraction(7, 10), Fraction(9, 10)):
        assert step_pass_probability(float(p), 30, 20) == pytest.approx(float(exact(p, 30, 20)))
    assert step_pass_probability(1.0, 100, 69) == 1.0
    assert step_pass_probability(0.0, 100, 69) == 0.0
    # below 0.69 the tail shrinks as committees grow, above it the tail grows
    assert step_pass_probability(0.65, 1000, 690) < step_pass_probability(0.65, 100, 69) < 0.5
    big = step_pass_probability(0.7, 10_000, 6_900)  # no overflow: normal approximation 0.985
    assert step_pass_probability(0.7, 100, 69) < big == pytest.approx(0.985, abs=0.002)


def test_whitepaper_figures_are_the_four_it_lists() -> None:
    assert {p: (f.empty_fraction, f.block_time_s) for p, f in WHITEPAPER.items()} == {
        0.7: (0.04, 5.5),
        0.65: (0.16, 14.0),
        0.6: (0.30, 32.0),
        0.5: (0.70, 120.0),
    }
    assert [f.at_least for f in WHITEPAPER.values()] == [False, False, False, True]


@pytest.mark.parametrize(
    "fields",
    [{"points": ()}, {"points": (1.2,)}, {"seeds": 0}, {"max_time_s": 0}, {"variants": ("x",)}],
)
def test_bad_sweeps_are_refused(fields: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        SweepConfig(**fields)  # type: ignore[arg-type]


# --- the command ------------------------------------------------------------------------------

ARGS = [
    *("--points", "1.0", "0.3"),
    *("--seeds", "1", "--rounds", "2", "--max-time-s", "10"),
    *("--nodes", "4", "--accounts", "5", "--n-c", "30", "--n-g", "5"),
    *("--lambda-ms", "100", "--big-lambda-ms", "300", "--latency-ms", "20", "--jobs", "1"),
]


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_participation_arguments(parser)
    return parser.parse_args(argv)


def test_command_prints_json_and_saves_a_png(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    plot = tmp_path / "img" / "participation.png"
    assert run_participation(parse(*ARGS, "--json", "--plot", str(plot)), plot=save_plot) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["participation"], r["empty_fraction"]) for r in rows] == [(1.0, 0.0), (0.3, None)]
    assert rows[0]["block_time_s"] > 0 and rows[1]["block_time_s"] is None
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_command_prints_a_table_beside_the_whitepaper(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    assert run_participation(parse(*ARGS[:-2], "--points", "0.7", "--jobs", "1"), save_plot) == 0
    out = capsys.readouterr().out
    assert "paper" in out and "4%, 5.5 s" in out


@pytest.mark.parametrize(
    "argv", [("--points", "0"), ("--points", "1.5"), ("--seeds", "0"), ("--max-time-s", "-1")]
)
def test_bad_flags_are_refused(argv: tuple[str, ...]) -> None:
    with pytest.raises(SystemExit):
        parse(*argv)


# --- with delegation ----------------------------------------------------------------------------

DELEGATED = SweepConfig(**{**_fields(SMALL), "points": (0.6, 0.5), "seeds": 4})
"""With and without delegation on the small network, seeds 1-4. Plain: at 60 % online most
blocks are empty and runs stall; at 50 % every run stalls without a single non-empty block
(t_h = 20 of 30 seats; an empty block is certified now and then, when the honest b = 1 votes
of a step happen to pass t_h: PROTOCOL §5's rule gives undecided nodes with the empty value
one vote, b = 1)."""


@pytest.fixture(scope="module")
def delegated() -> SweepResult:
    return run_sweep(replace(DELEGATED, variants=("plain", "delegation")), jobs=1)


def test_delegation_leaves_fewer_empty_blocks_where_the_plain_sweep_struggles(delegated) -> None:
    (plain_60, plain_50), (deleg_60, deleg_50) = delegated.variants.values()
    assert [p.variant for p in (plain_60, plain_50, deleg_60, deleg_50)] == [
        "plain",
        "plain",
        "delegation",
        "delegation",
    ]
    every_round = DELEGATED.seeds * DELEGATED.rounds
    # the premise: without delegation, 60 % online gives mostly empty blocks and a stall ...
    assert plain_60.empty > 0 and plain_60.stalled_runs > 0
    assert plain_60.empty_fraction > 0.5  # type: ignore[operator]
    # ... and 50 % online certifies no block, and every run stalls
    assert plain_50.committed == plain_50.empty and plain_50.stalled_runs == DELEGATED.seeds
    # same seeds, same offline accounts: only the rules differ
    for plain, deleg in ((plain_60, deleg_60), (plain_50, deleg_50)):
        assert [r.online_stake for r in deleg.runs] == [r.online_stake for r in plain.runs]
    # with delegation every run commits every round, with strictly fewer empty blocks at 60 %
    assert deleg_60.committed == deleg_50.committed == every_round
    assert deleg_60.stalled_runs == deleg_50.stalled_runs == 0
    assert deleg_60.empty < plain_60.empty
    assert deleg_60.empty_fraction < plain_60.empty_fraction  # type: ignore[operator]
    for plain_run, deleg_run in zip(plain_60.runs, deleg_60.runs, strict=True):
        assert deleg_run.seed == plain_run.seed
        assert deleg_run.committed >= plain_run.committed
        if plain_run.committed:  # a run that stalled at once has no empty share to beat
            deleg_share = deleg_run.empty / deleg_run.committed
            assert deleg_share <= plain_run.empty / plain_run.committed
    # and at 50 % it commits non-empty blocks where plain committed none
    assert deleg_50.committed - deleg_50.empty > 0 == plain_50.committed - plain_50.empty
    assert deleg_50.block_time_s is not None
    assert delegated.safe


def test_the_plot_draws_both_variants(delegated, tmp_path: Path) -> None:
    fig = figure(delegated)
    empty_panel, time_panel = fig.axes
    for ax in (empty_panel, time_panel):
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert {"echorand (plain)", "echorand (delegation)"} <= set(labels)
    lines = {line.get_label(): line for line in empty_panel.get_lines()}
    deleg = delegated.variants["delegation"]
    assert list(lines["echorand (delegation)"].get_ydata()) == pytest.approx(
        [p.empty_fraction * 100 for p in deleg]  # type: ignore[operator]
    )
    plain = delegated.variants["plain"]
    drawn = [p.empty_fraction * 100 for p in plain if p.empty_fraction is not None]
    assert list(lines["echorand (plain)"].get_ydata()) == pytest.approx(drawn)
    assert save_plot(delegated, tmp_path / "p.png").read_bytes()[:8] == PNG_MAGIC


PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

DELEGATION_ARGS = [
    *("--points", "0.6", "0.5"),
    *("--seeds", "2", "--rounds", "3", "--max-time-s", "15"),
    *("--nodes", "4", "--accounts", "5", "--n-c", "30", "--n-g", "5"),
    *("--lambda-ms", "100", "--big-lambda-ms", "300", "--latency-ms", "20", "--jobs", "1"),
    "--delegation",
]
"""The command on the network of `DELEGATED`, two seeds."""


def test_command_with_delegation_prints_json_per_variant_and_point(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run_participation(parse(*DELEGATION_ARGS, "--json"), save_plot) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["variant"], r["participation"]) for r in rows] == [
        ("plain", 0.6),
        ("plain", 0.5),
        ("delegation", 0.6),
        ("delegation", 0.5),
    ]
    for row in rows:
        assert row.keys() == PROMISED_FIELDS
        assert row["runs"] == 2 and row["forks"] == 0 and row["bad_certificates"] == 0
        assert row["whitepaper"] == (
            {"empty_fraction": 0.3, "block_time_s": 32.0, "at_least": False}
            if row["participation"] == 0.6
            else {"empty_fraction": 0.7, "block_time_s": 120.0, "at_least": True}
        )
    by_key = {(r["variant"], r["participation"]): r for r in rows}
    for point in (0.6, 0.5):
        assert by_key["plain", point]["online_stake"] == by_key["delegation", point]["online_stake"]
    plain_50 = by_key["plain", 0.5]
    assert plain_50["blocks"] == plain_50["empty_blocks"] and plain_50["stalled_runs"] == 2
    assert (
        by_key["delegation", 0.5]["blocks"] == 6 and by_key["delegation", 0.5]["stalled_runs"] == 0
    )


PROMISED_FIELDS = {
    "variant",
    "participation",
    "empty_fraction",
    "block_time_s",
    "block_time_over_s",
    "non_empty_block_time_s",
    "online_stake",
    "blocks",
    "empty_blocks",
    "runs",
    "stalled_runs",
    "simulated_s",
    "round_time_p50_s",
    "round_time_p90_s",
    "fast_path",
    "decided_past_mu",
    "step_pass_probability",
    "forks",
    "bad_certificates",
    "whitepaper",
}
"""What docs/studies.md and the option's help promise of each object."""


def _has_color(png: Path, color: str) -> bool:
    """Whether some pixel of `png` is exactly `color` ("#rrggbb")."""
    rgb = np.array([int(color[i : i + 2], 16) for i in (1, 3, 5)])
    pixels = np.rint(imread(png)[:, :, :3] * 255).astype(int)
    return bool((pixels == rgb).all(axis=-1).any())


def test_command_with_delegation_saves_one_png_of_both_variants(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    both, plain = tmp_path / "both.png", tmp_path / "plain.png"
    assert (
        run_participation(parse(*DELEGATION_ARGS, "--json", "--plot", str(both)), plot=save_plot)
        == 0
    )
    assert (
        run_participation(
            parse(*DELEGATION_ARGS[:-1], "--json", "--plot", str(plain)), plot=save_plot
        )
        == 0
    )
    capsys.readouterr()
    assert both.read_bytes()[:8] == PNG_MAGIC
    assert imread(both).shape[:2] == (round(SIZE[1] * DPI), round(SIZE[0] * DPI))
    # each variant's line is drawn in its own colour: plain's in both files, delegation's
    # only in the file of the --delegation sweep
    plain_color, deleg_color = COLORS[0], COLORS[1]
    assert _has_color(both, plain_color) and _has_color(both, deleg_color)
    assert _has_color(plain, plain_color) and not _has_color(plain, deleg_color)


def test_command_with_delegation_prints_a_table_per_variant(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    assert run_participation(parse(*DELEGATION_ARGS), save_plot) == 0
    out = capsys.readouterr().out
    plain, deleg = out.index("participation (plain)"), out.index("participation (delegation)")
    assert plain < deleg
    # each section shows its own stalls: plain stalls at 50 %, delegation nowhere
    assert "2/2" in out[plain:deleg] and "2/2" not in out[deleg:]
    assert out[deleg:].count("0/2") == 2
