"""pytest-benchmark: the stake table against pure-Python sortition (run with `pytest bench`)."""

from __future__ import annotations

from itertools import accumulate

import pytest

from echorand.protocol.sortition import StakeTable
from echorand.tools.benchmarks.sortition import (
    ROUND,
    SEED,
    STEP,
    _ledger,
    _python_committee,
    _python_update,
)

ACCOUNTS = 1_000_000
SEATS = 1000
UPDATES = 10_000


@pytest.fixture(scope="module")
def ledger():  # -> numpy.ndarray
    return _ledger(ACCOUNTS)


@pytest.fixture(scope="module")
def as_list(ledger) -> list[int]:
    return ledger.tolist()


@pytest.fixture(scope="module")
def changes(ledger) -> dict[int, int]:
    import numpy as np

    rng = np.random.default_rng(7)
    ids = rng.integers(0, ACCOUNTS, UPDATES).tolist()
    return dict(zip(ids, rng.integers(0, 10**9, UPDATES).tolist(), strict=True))


@pytest.mark.benchmark(group="sortition build")
def test_build_from_buffer(benchmark, ledger) -> None:
    table = benchmark(StakeTable, ledger)
    assert len(table) == ACCOUNTS


@pytest.mark.benchmark(group="sortition build")
def test_build_from_list(benchmark, as_list) -> None:
    table = benchmark(StakeTable, as_list)
    assert len(table) == ACCOUNTS


@pytest.mark.benchmark(group="sortition build")
def test_build_baseline_accumulate(benchmark, as_list) -> None:
    prefix = benchmark(lambda: list(accumulate(as_list)))
    assert len(prefix) == ACCOUNTS


@pytest.mark.benchmark(group="sortition committee")
def test_committee(benchmark, ledger, as_list) -> None:
    table = StakeTable(ledger)
    seats = benchmark(table.committee, SEED, ROUND, STEP, SEATS)
    assert seats == _python_committee(list(accumulate(as_list)), SEATS)


@pytest.mark.benchmark(group="sortition committee")
def test_committee_baseline_bisect(benchmark, as_list) -> None:
    prefix = list(accumulate(as_list))
    assert len(benchmark(_python_committee, prefix, SEATS)) == SEATS


@pytest.mark.benchmark(group="sortition update")
def test_update(benchmark, ledger, changes) -> None:
    table = StakeTable(ledger)
    benchmark(table.update, changes)
    assert all(table.balance(a) == v for a, v in changes.items())


@pytest.mark.benchmark(group="sortition update")
def test_update_baseline_list_and_accumulate(benchmark, as_list, changes) -> None:
    balances = list(as_list)
    prefix = benchmark(_python_update, balances, changes)
    assert len(prefix) == ACCOUNTS
