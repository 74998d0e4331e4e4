"""`echorand bench scale`: the rounds it times are real ledger rounds (no timing checks)."""

from __future__ import annotations

import pytest

from echorand.ledger.ledger import Ledger
from echorand.tools.benchmarks import scale


def test_the_scale_benchmark_compares_every_size_with_the_first() -> None:
    report = scale.run(accounts=[40, 300], rounds=3, transfers=30)
    assert [row.name for row in report.rows] == ["40 accounts: a round", "300 accounts: a round"]
    assert report.rows[0].baseline is None
    assert report.rows[1].baseline == "40 accounts" and report.rows[1].baseline_seconds


def test_its_blocks_apply_and_move_the_balances(tmp_path) -> None:
    genesis = scale.genesis(50)
    keys = genesis.public_keys()
    with Ledger.open(tmp_path, genesis, durable=False) as ledger:
        for _ in range(4):
            block = scale._block(ledger, keys, 30, 10)
            scale._round(ledger, block, scale._certificate(block))
        assert ledger.tip == 4
        nonces = [ledger.state.nonce(i) for i in range(40)]
        assert nonces == [3, 0] * 20, "blocks 1 and 3: 30 transfers from 10 senders each"
        assert ledger.supply == genesis.total


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="rounds >= 2"):
        scale.run(accounts=[400], rounds=1)
