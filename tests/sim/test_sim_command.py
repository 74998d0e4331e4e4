"""`echorand sim consensus` through its two entry points (the lead wires them into the CLI)."""

from __future__ import annotations

import argparse
import json

import pytest

from echorand.sim.command import add_consensus_arguments, run_consensus


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_consensus_arguments(parser)
    return parser.parse_args(argv)


def test_json_summary_has_the_promised_fields(capsys: pytest.CaptureFixture[str]) -> None:
    args = parse("--nodes", "5", "--accounts", "2", "--rounds", "2", "--seed", "4", "--json")
    assert run_consensus(args) == 0
    summary = json.loads(capsys.readouterr().out)
    for field in (
        "nodes",
        "rounds",
        "committed",
        "empty_blocks",
        "forks",
        "latency_ms",
        "messages",
    ):
        assert field in summary
    assert summary["nodes"] == 5 and summary["committed"] == 2 and summary["forks"] == []
    assert set(summary["latency_ms"]) == {"p50", "p99"}


def test_table_output(capsys: pytest.CaptureFixture[str]) -> None:
    args = parse("--nodes", "4", "--rounds", "1", "--byzantine", "0.25", "--behaviour", "late")
    assert run_consensus(args) == 0
    out = capsys.readouterr().out
    assert "rounds committed" in out and "forks" in out


def test_all_flags_parse() -> None:
    args = parse(
        "--nodes",
        "6",
        "--accounts",
        "2",
        "--rounds",
        "3",
        "--seed",
        "7",
        "--byzantine",
        "0.2",
        "--behaviour",
        "equivocate-vote",
        "--participation",
        "0.9",
        "--latency-ms",
        "30",
        "--loss",
        "0.01",
        "--partition",
        "0.5:100:900",
        "--crash",
        "2:100:500",
    )
    assert args.partition == (0.5, 100, 900) and args.crash == [(2, 100, 500)]


@pytest.mark.parametrize(
    "argv",
    [("--byzantine", "1.5"), ("--partition", "900:100"), ("--behaviour", "evil"), ("--nodes", "0")],
)
def test_bad_flags_are_refused(argv: tuple[str, ...]) -> None:
    with pytest.raises(SystemExit):
        parse(*argv)
