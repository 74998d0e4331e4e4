"""The stake table on a big ledger: build, committee, updates, memory.

Baselines, measured in the same run, are the plain pure-Python way of doing
sortition: a list of balances and its prefix sums (`itertools.accumulate`),
a seat by `bisect` over them after a hashlib chain, and for a batch of
balance updates, list assignment followed by one prefix-sum recompute (the
cheapest way to keep the prefix list valid for the next committee).
"""

from __future__ import annotations

import hashlib
import sys
from bisect import bisect_right
from itertools import accumulate

from echorand.protocol.sortition import StakeTable
from echorand.tools.benchmarks import Report, Row, best_time

BUILD_TARGET_S = 30e-3
COMMITTEE_TARGET_S = 0.5e-3
UPDATES_TARGET_S = 2e-3
BYTES_TARGET = 16.0

SEED = hashlib.sha256(b"echorand benchmark").digest()
ROUND = 1_000
STEP = 2


def _ledger(accounts: int):  # -> numpy.ndarray (uint64)
    """A deterministic ledger: balances below 10^9 (sum < 2^63), one in ten empty."""
    import numpy as np

    rng = np.random.default_rng(20_240_601)
    balances = rng.integers(1, 10**9, accounts, dtype=np.uint64)
    balances[rng.random(accounts) < 0.1] = 0
    return balances


def _python_committee(prefix: list[int], seats: int) -> list[int]:
    """The baseline: hashlib chain, 256-bit mod with Python ints, bisect on prefix sums."""
    total = prefix[-1]
    h = hashlib.sha256(SEED + ROUND.to_bytes(8, "big") + STEP.to_bytes(4, "big")).digest()
    out = []
    for _ in range(seats):
        out.append(bisect_right(prefix, int.from_bytes(h, "big") % total))
        h = hashlib.sha256(h).digest()
    return out


def _python_update(balances: list[int], changes: dict[int, int]) -> list[int]:
    """The baseline: assign each balance, then recompute the prefix sums once."""
    for account, value in changes.items():
        balances[account] = value
    return list(accumulate(balances))


def _python_bytes(balances: list[int], prefix: list[int]) -> int:
    """Memory of the two lists and their int objects (small cached ints counted too)."""
    return (
        sum(sys.getsizeof(x) for x in (balances, prefix))
        + sum(map(sys.getsizeof, balances))
        + sum(map(sys.getsizeof, prefix))
    )


def _rows_build(report: Report, ledger, as_list: list[int], repeat: int) -> None:
    accounts = len(as_list)
    baseline = best_time(lambda: list(accumulate(as_list)), repeat=repeat)
    for source, balances in (("numpy uint64 buffer", ledger), ("list of ints", as_list)):
        ours = best_time(lambda b=balances: StakeTable(b), repeat=repeat)
        report.add(
            Row(
                name=f"build, {accounts:,} accounts, from a {source}",
                seconds=ours,
                items=accounts,
                baseline="itertools.accumulate over a list of ints",
                baseline_seconds=baseline,
                target=f"<= {BUILD_TARGET_S * 1e3:g} ms",
                target_met=ours <= BUILD_TARGET_S,
            )
        )


def _rows_committee(
    report: Report, table: StakeTable, prefix: list[int], seats: int, repeat: int
) -> None:
    for size, target in ((seats, COMMITTEE_TARGET_S), (20, None)):
        expected = _python_committee(prefix, size)
        if table.committee(SEED, ROUND, STEP, size) != expected:
            raise AssertionError("the stake table and the pure-Python baseline disagree")
        ours = best_time(lambda s=size: table.committee(SEED, ROUND, STEP, s), repeat=repeat)
        baseline = best_time(lambda s=size: _python_committee(prefix, s), repeat=repeat)
        report.add(
            Row(
                name=f"committee, {size:,} seats, {len(table):,} accounts",
                seconds=ours,
                items=size,
                baseline="hashlib chain + bisect over prefix sums",
                baseline_seconds=baseline,
                target=None if target is None else f"<= {target * 1e3:g} ms",
                target_met=None if target is None else ours <= target,
            )
        )


def _rows_update(
    report: Report, table: StakeTable, as_list: list[int], updates: int, repeat: int
) -> None:
    import numpy as np

    rng = np.random.default_rng(7)
    ids = rng.integers(0, len(as_list), updates).tolist()
    values = rng.integers(0, 10**9, updates).tolist()
    changes = dict(zip(ids, values, strict=True))
    ours = best_time(lambda: table.update(changes), repeat=repeat)
    baseline = best_time(lambda: _python_update(as_list, changes), repeat=repeat)
    report.add(
        Row(
            name=f"update {len(changes):,} balances, {len(as_list):,} accounts",
            seconds=ours,
            items=len(changes),
            baseline="list assignment + one accumulate recompute",
            baseline_seconds=baseline,
            target=f"<= {UPDATES_TARGET_S * 1e3:g} ms",
            target_met=ours <= UPDATES_TARGET_S,
        )
    )


def _row_memory(report: Report, table: StakeTable, as_list: list[int]) -> None:
    """Bytes per account: the table's size less that of an empty table (a fixed struct)."""
    prefix = list(accumulate(as_list))
    ours = (table.nbytes - StakeTable([]).nbytes) / len(table)
    baseline = _python_bytes(as_list, prefix) / len(as_list)
    report.add(
        Row(
            name=f"memory: {ours:.2f} bytes/account (pure Python lists: {baseline:.0f})",
            seconds=0.0,
            items=len(table),
            target=f"<= {BYTES_TARGET:g} bytes/account",
            target_met=ours <= BYTES_TARGET,
            extra={"bytes_per_account": ours, "baseline_bytes_per_account": baseline},
        )
    )


def run(
    accounts: int = 1_000_000, seats: int = 1000, updates: int = 10_000, repeat: int = 5
) -> Report:
    """Measure the stake table against pure-Python sortition on `accounts` accounts."""
    if accounts < 1 or seats < 1 or updates < 1:
        raise ValueError("accounts, seats and updates must be at least 1")
    ledger = _ledger(accounts)
    as_list = ledger.tolist()
    report = Report(title=f"sortition: the stake table, {accounts:,} accounts")
    _rows_build(report, ledger, as_list, repeat)
    table = StakeTable(ledger)
    _rows_committee(report, table, list(accumulate(as_list)), seats, repeat)
    _rows_update(report, table, as_list, updates, repeat)
    _row_memory(report, StakeTable(ledger), as_list)
    return report
