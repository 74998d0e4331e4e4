"""pytest-benchmark: a 4-process devnet under load (`pytest bench/test_bench_devnet.py`).

One run each (a devnet takes tens of seconds); the figures go into `extra_info`, the
targets are those of `echorand bench devnet`.
"""

from __future__ import annotations

import pytest

from echorand.tools.benchmarks import devnet
from echorand.tools.devnet import DevnetOptions, run_devnet


@pytest.mark.parametrize(("tps", "seconds"), [(0.0, 20.0), (6000.0, 60.0)])
def test_devnet(benchmark: pytest.FixtureDef, tps: float, seconds: float) -> None:
    options = DevnetOptions(nodes=4, accounts=400, duration=seconds, tps=tps, seed="bench")
    summary = benchmark.pedantic(run_devnet, args=(options,), rounds=1, iterations=1)
    benchmark.extra_info.update(
        {
            "blocks_per_s": summary["blocks_per_s"],
            "tps": summary["tps"],
            "finality_p50_ms": summary["finality_ms"]["p50"],
            "finality_p99_ms": summary["finality_ms"]["p99"],
            "forks": summary["forks"],
        }
    )
    assert summary["forks"] == 0


def test_devnet_by_ledger_size(benchmark: pytest.FixtureDef) -> None:
    """400 against a million accounts, 2 000 transfers/s offered for 30 s each (the issue's
    comparison): the ratios to the 400-account run go into `extra_info`."""
    report = benchmark.pedantic(
        devnet.run,
        kwargs={"accounts": [400, 1_000_000], "load_seconds": 30.0, "tps": 2000.0},
        rounds=1,
        iterations=1,
    )
    benchmark.extra_info.update({row.name: row.ratio for row in report.rows if row.baseline})
    assert all(row.extra["forks"] == 0 for row in report.rows)
