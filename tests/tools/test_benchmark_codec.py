"""The codec benchmark runs end to end on a small workload (no timing is asserted)."""

from __future__ import annotations

import random

import pytest

from echorand.tools.benchmarks import codec
from echorand.wire.messages import decode, encode_many


def test_run_reports_every_operation_against_the_baseline() -> None:
    report = codec.run(txs=20, votes=30, repeat=1, min_seconds=0.0)
    assert len(report.rows) == 6
    for row in report.rows:
        assert row.baseline == codec.BASELINE
        assert row.seconds > 0 and row.baseline_seconds is not None
        assert row.items in (20, 30)


def test_the_baseline_reads_and_writes_the_same_bytes_as_ours() -> None:
    frame = codec.make_block_message(25, random.Random(3)).encode()
    assert codec.py_encode_gc_block(codec.py_decode_gc_block(frame)) == frame
    ours = decode(frame).block.transactions
    theirs = codec.py_decode_gc_block(frame).block.transactions
    assert [t.amount for t in ours] == [t.amount for t in theirs]
    for vote in encode_many(codec.make_votes(10, random.Random(4))):
        assert codec.py_encode_bba(codec.py_decode_bba(vote)) == vote


def test_the_baseline_rejects_what_ours_rejects() -> None:
    frame = bytearray(codec.make_block_message(3, random.Random(5)).encode())
    frame[-100] ^= 1
    with pytest.raises(ValueError, match="payload_hash"):
        codec.py_decode_gc_block(bytes(frame))
    vote = bytearray(encode_many(codec.make_votes(1, random.Random(6)))[0])
    vote[21] = 2
    with pytest.raises(ValueError, match="non-canonical"):
        codec.py_decode_bba(bytes(vote))
