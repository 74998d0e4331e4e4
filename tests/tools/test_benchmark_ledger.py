"""The ledger benchmark runs to the end and reports every row (no timing checks)."""

from __future__ import annotations

import pytest

from echorand.tools.benchmarks import ledger
from echorand.wire.transactions import AccountState


def test_the_ledger_benchmark_reports_every_operation() -> None:
    report = ledger.run(accounts=600, transactions=200, keys=100, repeat=1)
    names = [row.name for row in report.rows]
    assert len(names) == 12
    assert sum(n.startswith("check: ") for n in names) == 2
    assert sum(n.startswith("prepare") for n in names) == 2
    assert any(n.startswith("ledger.apply a 200-transaction block") for n in names)
    with_baseline = [row for row in report.rows if row.baseline]
    assert len(with_baseline) == 7
    assert all(row.baseline_seconds and row.seconds > 0 for row in with_baseline)


def test_the_python_baseline_agrees_with_the_native_state() -> None:
    seeds, pks = ledger._keys(300)
    txs = ledger._block_txs(seeds, pks, 100, bytes(32))
    keys = [pks[i : i + 32] for i in range(0, len(pks), 32)]
    python = ledger.PythonState(keys, [ledger.BALANCE] * 300)
    entries = b"".join(k + ledger.BALANCE.to_bytes(8, "big") for k in keys)
    state = AccountState(entries)
    assert state.check(txs) == python.check(txs) == [None] * 100
    state.apply(txs, 0)
    python.commit(python.prepare(txs, 0))
    assert [state.balance(i) for i in range(len(state))] == python.balances


@pytest.mark.parametrize("bad", [{"accounts": 0}, {"transactions": 0}, {"accounts": 5}])
def test_the_ledger_benchmark_refuses_bad_sizes(bad: dict[str, int]) -> None:
    with pytest.raises(ValueError, match=r"at least 1|transactions <= accounts"):
        ledger.run(**bad)
