"""echorand.benchmarks.verify.run builds a complete report (no timings are asserted)."""

from __future__ import annotations

import pytest

from echorand.benchmarks import verify as bench


def test_run_reports_each_row_against_pynacl() -> None:
    report = bench.run(
        batch_sizes=(8, 64), threads=(1, None), repeat=1, min_seconds=0.0, invalid_fraction=0.05
    )
    names = [row.name for row in report.rows]
    assert names[0] == "verify, one signature"
    assert "verify_batch 64, 1 thread" in names
    assert any(name.startswith("verify_batch 8, all cores") for name in names)
    assert names[-1].endswith("3 invalid")
    for row in report.rows:
        assert row.baseline is not None and row.ratio is not None and row.ratio > 0
    (target,) = [row for row in report.rows if row.target is not None]
    assert target.name == "verify_batch 64, 1 thread"
    assert target.target_met == (target.ratio >= bench.TARGET_RATIO)
    assert report.to_json()["rows"]


def test_signatures_are_valid_and_corruption_is_counted() -> None:
    data = bench.Signatures(20, message_size=100, seed=3)
    assert all(len(m) == 100 for m in data.messages)
    assert bench.pynacl_verify_all(data.verify_keys, data.messages, data.signatures) == 20
    corrupted, bad = data.corrupted(0.1, seed=3)
    assert bad == 2
    assert bench.pynacl_verify_all(data.verify_keys, data.messages, corrupted) == 18


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"batch_sizes": ()}, "batch_sizes must be positive"),
        ({"batch_sizes": (0,)}, "batch_sizes must be positive"),
        ({"invalid_fraction": 2.0}, "invalid_fraction must be in"),
    ],
)
def test_bad_options(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        bench.run(**options)
