"""`echorand bench devnet --accounts A B ...`: the rows that compare ledger sizes, built
from devnet summaries (the runs themselves are in bench/test_bench_devnet.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from echorand.tools.benchmarks import devnet


def summary(blocks: int, empty: int, transactions: int, p50: int | None) -> dict[str, Any]:
    return {
        "seconds": 30.0,
        "blocks": blocks,
        "empty_blocks": empty,
        "blocks_per_s": blocks / 30,
        "transactions": transactions,
        "tps": transactions / 30,
        "finality_ms": {"p50": p50, "p99": None if p50 is None else 2 * p50},
        "forks": 0,
    }


def test_the_first_count_is_the_baseline_of_the_others() -> None:
    base = summary(220, 0, 60_000, 230)
    rows = devnet._scaling_rows(400, base, None, 400)
    assert [r.name for r in rows] == [
        "400 accounts: a block",
        "400 accounts: a finalized transfer",
        "400 accounts: finality p50",
    ]
    assert all(r.baseline is None and r.target_met is None for r in rows)
    close = devnet._scaling_rows(10**6, summary(205, 10, 57_000, 250), base, 400)
    assert [r.target_met for r in close] == [True, True, True]
    assert close[0].baseline == "400 accounts" and close[0].ratio == pytest.approx(205 / 220)
    assert close[0].extra["empty_share"] == round(10 / 205, 3)
    far = devnet._scaling_rows(10**6, summary(36, 31, 20_000, 6400), base, 400)
    assert [r.target_met for r in far] == [False, False, False]
    empties = devnet._scaling_rows(10**6, summary(215, 40, 60_000, 230), base, 400)
    assert [r.target_met for r in empties] == [False, True, True], "the empty share counts"
    none = devnet._scaling_rows(10**7, summary(0, 0, 0, None), base, 400)
    assert [r.target_met for r in none] == [False, False, False]


def test_every_count_must_cover_the_nodes() -> None:
    with pytest.raises(ValueError, match="at least the 4 nodes"):
        devnet.run(accounts=[400, 3])


def test_the_senders_must_exist_at_every_size() -> None:
    with pytest.raises(ValueError, match="--senders must be between 2"):
        devnet.run(accounts=[400, 10**6], senders=401)


def overloaded(offered: float, transactions: int, p50: int | None) -> dict[str, Any]:
    return {
        **summary(100, 0, transactions, p50),
        "offered_tps": offered,
        "tps_per_10s": [transactions / 30] * 3,
        "accepted": transactions,
        "deferred": 5_000,
        "busy": 12,
        "refused": {"mempool full: fee too low": 3},
    }


def test_overload_rows_compare_each_load_with_the_peaks(tmp_path: Path) -> None:
    base = overloaded(8000, 240_000, 300)
    before = overloaded(16_000, 110_000, 9000)
    first = devnet._overload_row("1x", base, base, base)
    assert first.ratio == pytest.approx(1.0) and first.target_met is True
    held = devnet._overload_row("2x", overloaded(16_000, 220_000, 600), base, before)
    assert held.target_met is True and held.ratio == pytest.approx(220 / 110)
    assert held.baseline == "no admission control, same load"
    assert held.extra["deferred"] == 5_000 and held.extra["refused"] == 3
    assert held.extra["before_tps"] == before["tps"] and held.extra["before_p50_ms"] == 9000
    fell = devnet._overload_row("4x", overloaded(32_000, 200_000, 600), base, before)
    assert fell.target_met is False, "below 90 % of the peak's rate is a collapse"
    slow = devnet._overload_row("4x", overloaded(32_000, 240_000, 1500), base, before)
    assert slow.target_met is False, "p50 finality of 1 s or more misses"
    probe = devnet._overload_row("probe", base, None, None)
    assert probe.baseline is None and probe.target_met is None
    png = tmp_path / "overload.png"
    runs = [(1.0, base, base), (2.0, overloaded(16_000, 220_000, 600), before)]
    devnet.write_overload_png(png, 8000, runs, "title")
    assert png.read_bytes().startswith(b"\x89PNG")


def test_overload_takes_one_count_and_a_positive_peak() -> None:
    with pytest.raises(ValueError, match="--overload"):
        devnet.run(accounts=[400, 10**6], overload=True)
    with pytest.raises(ValueError, match="--overload"):
        devnet.run(overload=True, peak=0)
