"""pytest-benchmark: the VRF(r, s) hash chain against a hashlib loop (run with `pytest bench`)."""

from __future__ import annotations

import pytest

from echorand.protocol.sortition import vrf_chain
from echorand.tools.benchmarks.chain import SEED, _hashlib_chain

COUNT = 100_000


@pytest.mark.benchmark(group="chain")
def test_vrf_chain(benchmark) -> None:
    out = benchmark(vrf_chain, SEED, 1, 1, COUNT)
    assert out[-32:] == _hashlib_chain(COUNT)[-32:]


@pytest.mark.benchmark(group="chain")
def test_vrf_chain_baseline_hashlib(benchmark) -> None:
    assert len(benchmark(_hashlib_chain, COUNT)) == 32 * COUNT
