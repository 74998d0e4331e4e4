"""pytest-benchmark: admitting a batch with many queued, ours (the native queue) against the
Python mempool and the former re-check of the senders' queues (run with `pytest bench`)."""

from __future__ import annotations

import pytest

from echorand._native import PendingState
from echorand.ledger.mempool import Mempool
from echorand.tools.benchmarks.mempool import CHAIN, Pool, QueueRecheck, _workload
from echorand.tools.benchmarks.mempool_model import PyMempool

SENDERS = 400
QUEUED = 20_000
BATCH = 500


@pytest.fixture(scope="module")
def workload():
    return _workload(SENDERS, QUEUED, BATCH)


def _admit(benchmark, pool_type: type[Pool], workload) -> None:
    state, queued, batch = workload
    verified = {tx.id for tx in queued} | {tx.id for tx in batch}

    def setup():
        pool = pool_type(state, genesis_hash=CHAIN)
        pool.add(queued, verified)
        return (pool,), {}

    def admit(pool: Pool) -> list[str | None]:
        return pool.add(batch, verified)

    reasons = benchmark.pedantic(admit, setup=setup, rounds=7)
    assert reasons == [None] * BATCH


@pytest.mark.benchmark(group="mempool admission")
def test_admit(benchmark, workload) -> None:
    _admit(benchmark, Mempool, workload)


@pytest.mark.benchmark(group="mempool admission")
def test_admit_python_mempool(benchmark, workload) -> None:
    _admit(benchmark, PyMempool, workload)


@pytest.mark.benchmark(group="mempool admission")
def test_admit_baseline_queue_recheck(benchmark, workload) -> None:
    _admit(benchmark, QueueRecheck, workload)


@pytest.mark.benchmark(group="mempool rebuild")
def test_rebuild(benchmark, workload) -> None:
    state, queued, _ = workload
    pending = PendingState()
    assert benchmark(pending.rebuild, state, queued) == QUEUED
