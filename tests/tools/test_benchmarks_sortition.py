"""The sortition and chain benchmarks run to the end and report every row (no timing checks)."""

from __future__ import annotations

import pytest

from echorand.tools.benchmarks import chain, sortition


def test_the_sortition_benchmark_reports_every_operation() -> None:
    report = sortition.run(accounts=2000, seats=50, updates=100, repeat=1)
    names = [row.name for row in report.rows]
    assert len(names) == 6
    assert any(n.startswith("build") and "buffer" in n for n in names)
    assert any(n.startswith("committee, 50 seats") for n in names)
    assert any(n.startswith("update") for n in names)
    memory = report.rows[-1]
    assert memory.extra["bytes_per_account"] == 8.0
    assert memory.target_met is True
    assert all(row.baseline_seconds for row in report.rows[:-1])


def test_the_chain_benchmark_reports_ns_per_hash() -> None:
    report = chain.run(count=2000, repeat=1)
    (row,) = report.rows
    assert row.items == 2000
    assert row.baseline == "hashlib.sha256 loop"
    assert row.extra["ns_per_hash"] > 0


@pytest.mark.parametrize("bad", [{"accounts": 0}, {"seats": 0}, {"updates": 0}])
def test_the_sortition_benchmark_refuses_empty_sizes(bad: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        sortition.run(**bad)
