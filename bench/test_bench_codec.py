"""pytest-benchmark runs of the codec workloads of `echorand.tools.benchmarks.codec`
(ours and baseline).

Run with `pytest bench/test_bench_codec.py` (bench/ is not collected by default).
"""

from __future__ import annotations

import random

import pytest

from echorand.tools.benchmarks import codec
from echorand.wire.messages import decode, decode_many, encode_many

TXS = 10_000
VOTES = 10_000


@pytest.fixture(scope="module")
def block_frame() -> bytes:
    return codec.make_block_message(TXS, random.Random(1)).encode()


@pytest.fixture(scope="module")
def vote_frames() -> list[bytes]:
    return encode_many(codec.make_votes(VOTES, random.Random(2)))


@pytest.mark.benchmark(group="decode block")
def test_decode_block(benchmark, block_frame: bytes) -> None:
    msg = benchmark(decode, block_frame)
    assert msg.block.tx_count == TXS


@pytest.mark.benchmark(group="decode block")
def test_decode_block_and_make_transactions(benchmark, block_frame: bytes) -> None:
    txs = benchmark(lambda: decode(block_frame).block.transactions)
    assert len(txs) == TXS


@pytest.mark.benchmark(group="decode block")
def test_decode_block_baseline(benchmark, block_frame: bytes) -> None:
    msg = benchmark(codec.py_decode_gc_block, block_frame)
    assert len(msg.block.transactions) == TXS


@pytest.mark.benchmark(group="encode block")
def test_encode_block(benchmark, block_frame: bytes) -> None:
    msg = decode(block_frame)
    assert benchmark(msg.encode) == block_frame


@pytest.mark.benchmark(group="encode block")
def test_encode_block_baseline(benchmark, block_frame: bytes) -> None:
    msg = codec.py_decode_gc_block(block_frame)
    assert benchmark(codec.py_encode_gc_block, msg) == block_frame


@pytest.mark.benchmark(group="decode votes")
def test_decode_votes(benchmark, vote_frames: list[bytes]) -> None:
    out = benchmark(decode_many, vote_frames)
    assert len(out) == VOTES


@pytest.mark.benchmark(group="decode votes")
def test_decode_votes_baseline(benchmark, vote_frames: list[bytes]) -> None:
    out = benchmark(lambda: [codec.py_decode_bba(f) for f in vote_frames])
    assert len(out) == VOTES


@pytest.mark.benchmark(group="encode votes")
def test_encode_votes(benchmark, vote_frames: list[bytes]) -> None:
    msgs = decode_many(vote_frames)
    assert benchmark(encode_many, msgs) == vote_frames


@pytest.mark.benchmark(group="encode votes")
def test_encode_votes_baseline(benchmark, vote_frames: list[bytes]) -> None:
    msgs = [codec.py_decode_bba(f) for f in vote_frames]
    assert benchmark(lambda: [codec.py_encode_bba(m) for m in msgs]) == vote_frames
