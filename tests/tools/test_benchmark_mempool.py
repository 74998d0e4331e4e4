"""The mempool benchmark runs end to end on a small workload (no timing is asserted)."""

from __future__ import annotations

from echorand.tools.benchmarks import mempool


def test_run_reports_every_step_of_both_pools() -> None:
    report = mempool.run(senders=8, queued=80, batch=16, block=30, repeat=1)
    assert [row.items for row in report.rows] == [16, 16, 16, 30, 30, 16]
    for row in report.rows:
        assert row.seconds > 0 and row.baseline_seconds is not None
    assert sum(row.baseline == mempool.MODEL for row in report.rows) == 5
