"""The `echorand` command line: parsing, and each command end to end on small inputs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from echorand.ledger.genesis import Genesis
from echorand.tools.cli import build_parser, main
from echorand.tools.devnet import print_summary


def test_bench_chain_prints_one_json_object(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "chain", "--count", "2000", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["title"].startswith("chain")
    [row] = out["rows"]
    assert row["items"] == 2000 and row["ratio"] > 0


def test_bench_sortition_table(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["bench", "sortition", "--accounts", "5000", "--seats", "50", "--updates", "100"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "committee, 50 seats" in out and "bytes/account" in out


def test_unknown_bench_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["bench", "nope"])
    assert exc.value.code == 2
    assert "invalid choice: 'nope'" in capsys.readouterr().err


def test_sim_leader_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "leader", "--blocks", "5000", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["first_authors"] == [0, 1, 2, 3, 4, 6, 14, 10, 5, 1]
    assert out["max_wait"] <= 6


def test_sim_consensus_json(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["sim", "consensus", "--nodes", "4", "--rounds", "2", "--json"]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("nodes", "rounds", "committed", "empty_blocks", "forks", "latency_ms", "messages"):
        assert key in out
    assert out["committed"] == 2 and out["forks"] == []
    assert set(out["latency_ms"]) >= {"p50", "p99"}


def test_devnet_runs_real_nodes_and_prints_one_json_object(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ["devnet", "--nodes", "2", "--accounts", "20", "--duration", "3", "--tps", "100"]
    assert main([*args, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("nodes", "seconds", "blocks", "empty_blocks", "transactions", "tps", "forks"):
        assert key in out
    assert out["nodes"] == 2 and out["forks"] == 0 and out["blocks"] > 0
    assert set(out["finality_ms"]) == {"p50", "p99"}
    assert out["accepted"] == out["submitted"] > 0
    supply = out["supply"]  # the devnet turns block rewards on
    assert supply["minted"] > 0 and supply["total"] == supply["genesis"] + supply["minted"]
    # its 50-seat committees fail the 2^-80 check (PROTOCOL §5): waived, and said so
    committee = out["committee"]
    assert committee["waived"] is True and committee["secure"] is False
    assert committee["n_c"] == 50 and committee["f"] == "1/5"
    # the blocks of the window, final or still tentative at node 0 (PROTOCOL §6): with both
    # nodes final-voting, all but the newest become final
    assert out["final_blocks"] + out["tentative_blocks"] == out["blocks"]
    assert out["final_blocks"] > 0 and out["final_round"] > 0
    print_summary(out)
    table = capsys.readouterr().out
    assert "blocks final / tentative" in table
    assert f"{out['final_blocks']} / {out['tentative_blocks']}" in table


def test_genesis_takes_the_block_rewards(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["genesis", "--accounts", "4", "--nodes", "1", "--out", str(tmp_path / "g")]
    args += ["--seed", "r", "--reward-floor", "5", "--reward-ceiling", "50"]
    assert main([*args, "--reward-window", "8", "--producer-share", "40"]) == 0
    rewards = Genesis.load(tmp_path / "g").params.rewards
    assert (rewards.floor, rewards.ceiling, rewards.window, rewards.producer_share) == (
        5,
        50,
        8,
        40,
    )
    capsys.readouterr()
    bad = ["genesis", "--accounts", "4", "--nodes", "1", "--out", str(tmp_path / "h")]
    assert main([*bad, "--seed", "r", "--reward-floor", "9", "--reward-ceiling", "3"]) == 1
    assert "rewards: need 0 <= floor <= ceiling" in capsys.readouterr().err


def test_sim_participation_json(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["sim", "participation", "--points", "1.0", "--seeds", "1", "--rounds", "2"]
    args += ["--nodes", "4", "--accounts", "3", "--n-c", "30", "--jobs", "1", "--json"]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    points = out if isinstance(out, list) else out["points"]
    assert {"participation", "empty_fraction", "block_time_s"} <= set(points[0])
    assert points[0]["empty_fraction"] == 0


def test_python_m_echorand_node_is_echorand_node(tmp_path: Path) -> None:
    """`python -m echorand.node` parses and refuses as `echorand node` does."""
    missing = str(tmp_path / "missing.toml")
    runs = [
        subprocess.run(
            [sys.executable, *how, "--config", missing],
            capture_output=True,
            text=True,
            cwd=tmp_path,
        )  # not from the checkout: `-m` would import its echorand/, without the built core
        for how in (["-m", "echorand.node"], ["-m", "echorand.tools.cli", "node"])
    ]
    assert [r.returncode for r in runs] == [2, 2]
    assert runs[0].stderr == runs[1].stderr and "missing.toml: cannot read" in runs[0].stderr
