"""pytest-benchmark: the leader-order study against the Python model (run with `pytest bench`)."""

from __future__ import annotations

import pytest

from echorand.tools.benchmarks.leader import _native_authors, python_authors

VALIDATORS = 16
BLOCKS = 10_000


@pytest.mark.benchmark(group="leader")
@pytest.mark.parametrize("slow_honest", [None, 5])
def test_leader_study(benchmark, slow_honest: int | None) -> None:
    out = benchmark(_native_authors, VALIDATORS, BLOCKS, slow_honest)
    assert out[:1000] == python_authors(VALIDATORS, 1000, slow_honest)


@pytest.mark.benchmark(group="leader")
@pytest.mark.parametrize("slow_honest", [None, 5])
def test_leader_study_baseline_python(benchmark, slow_honest: int | None) -> None:
    out = benchmark.pedantic(
        python_authors, args=(VALIDATORS, BLOCKS, slow_honest), rounds=1, iterations=1
    )
    assert len(out) == BLOCKS
