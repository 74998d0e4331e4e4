"""Studies on a Dask distributed cluster (`--cluster`): a local cluster of two worker
processes, started here, gives the same results as local runs for the same seeds."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

distributed = pytest.importorskip("distributed", reason="the cluster extra (Dask distributed)")

from echorand.tools.cli import main  # noqa: E402
from echorand.tools.studies.participation import SweepConfig, run_sweep  # noqa: E402


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as local:
        yield local.scheduler_address


SWEEP = SweepConfig(
    points=(1.0, 0.7), seeds=2, rounds=2, nodes=4, accounts=3, n_c=30, max_time_s=60.0
)


def test_a_participation_sweep_gives_the_same_results_on_the_cluster(cluster: str) -> None:
    here = run_sweep(SWEEP, jobs=1)
    there = run_sweep(SWEEP, cluster=cluster)
    assert there.jobs == 2
    assert there.runs == here.runs and there.to_json() == here.to_json()


def test_sim_participation_takes_cluster(cluster: str, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["sim", "participation", "--points", "1.0", "--seeds", "2", "--rounds", "2"]
    argv += ["--nodes", "4", "--accounts", "3", "--n-c", "30", "--json"]
    assert main([*argv, "--jobs", "1"]) == 0
    here = json.loads(capsys.readouterr().out)
    assert main([*argv, "--cluster", cluster]) == 0
    assert json.loads(capsys.readouterr().out) == here


def test_a_sim_consensus_sweep_on_the_cluster(
    cluster: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["sim", "consensus", "--nodes", "4", "--rounds", "2", "--seeds", "3", "--json"]
    assert main(argv) == 0
    here = json.loads(capsys.readouterr().out)
    assert [run["seed"] for run in here] == [1, 2, 3] and all(r["committed"] == 2 for r in here)
    assert main([*argv, "--cluster", cluster]) == 0
    assert json.loads(capsys.readouterr().out) == here
    assert main([*argv[:-1], "--cluster", cluster]) == 0
    assert "one run per seed" in capsys.readouterr().out
