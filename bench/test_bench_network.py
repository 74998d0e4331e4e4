"""pytest-benchmark: the network receive path against an asyncio streams reader (`pytest bench`)."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest

from echorand.tools.benchmarks import network
from echorand.tools.benchmarks.codec import make_votes

VOTES = 20_000
BLOCKS, BLOCK_TXS = 10, 10_000


@pytest.fixture(scope="module")
def harness() -> Iterator[network.Harness]:
    h = network.Harness()
    yield h
    h.close()


@pytest.fixture(scope="module")
def votes() -> bytes:
    return network.framed(list(make_votes(VOTES, random.Random(1))))


@pytest.fixture(scope="module")
def blocks() -> bytes:
    return network.framed(list(network.make_blocks(BLOCKS, BLOCK_TXS, random.Random(2))))


@pytest.mark.benchmark(group="receive votes")
def test_receive_votes(benchmark, harness: network.Harness, votes: bytes) -> None:
    benchmark(harness.ours, votes, VOTES)


@pytest.mark.benchmark(group="receive votes")
def test_receive_votes_baseline(benchmark, harness: network.Harness, votes: bytes) -> None:
    benchmark(harness.streams, votes, VOTES)


@pytest.mark.benchmark(group="receive blocks")
def test_receive_blocks(benchmark, harness: network.Harness, blocks: bytes) -> None:
    benchmark(harness.ours, blocks, BLOCKS)


@pytest.mark.benchmark(group="receive blocks")
def test_receive_blocks_baseline(benchmark, harness: network.Harness, blocks: bytes) -> None:
    benchmark(harness.streams, blocks, BLOCKS)
