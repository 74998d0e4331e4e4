"""The network benchmark runs to the end and reports both workloads (no timing checks)."""

from __future__ import annotations

import pytest

from echorand.tools.benchmarks import network


def test_the_network_benchmark_reports_votes_and_blocks() -> None:
    report = network.run(votes=200, blocks=2, block_txs=50, repeat=1, min_seconds=0.001)
    assert [r.items for r in report.rows] == [200, 2]
    assert all(r.baseline == network.BASELINE and r.baseline_seconds for r in report.rows)
    assert all(r.extra["bytes"] > 0 for r in report.rows)


def test_the_network_benchmark_refuses_empty_workloads() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        network.run(votes=0)
