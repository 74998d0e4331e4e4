"""echorand.tools.benchmarks.verify.run builds a complete report (no timings are asserted)."""

from __future__ import annotations

import pytest

from echorand import _native
from echorand.tools.benchmarks import verify as bench


def test_run_reports_each_row_against_pynacl() -> None:
    report = bench.run(
        batch_sizes=(8, 64), threads=(1, None), repeat=1, min_seconds=0.0, invalid_fraction=0.05
    )
    names = [row.name for row in report.rows]
    assert names[:3] == [
        "verify, one signature",
        "OpenSSL (cryptography), one signature",
        "verify_batch 1, 1 thread",
    ]
    assert "verify_batch 64, 1 thread" in names
    assert any(name.startswith("verify_batch 8, all cores") for name in names)
    assert any(name.endswith("3 invalid") for name in names)
    for row in report.rows:
        assert row.baseline is not None and row.ratio is not None and row.ratio > 0
    (target,) = [row for row in report.rows if row.target is not None]
    assert target.name == "verify_batch 64, 1 thread"
    assert target.target_met == (target.ratio >= bench.TARGET_RATIOS[64])
    assert report.machine["verify_backend"] in ("avx512ifma", "portable")
    assert report.to_json()["rows"]


def test_run_reports_the_vrf_against_ed25519_verify_of_the_same_run() -> None:
    report = bench.run(batch_sizes=(8,), threads=(1, None), repeat=1, min_seconds=0.0)
    verify_row = report.rows[0]
    rows = {row.name: row for row in report.rows}
    vrf_names = ["Ed25519 sign (PyNaCl)", "VRF prove", "VRF verify", "VRF verify_batch 8, 1 thread"]
    for name in vrf_names:
        row = rows[name]
        assert row.baseline is not None and row.baseline.startswith("Ed25519 verify (ours)")
        assert row.baseline_seconds == pytest.approx(verify_row.seconds * row.items)
        assert row.extra["ed25519_verifies"] == pytest.approx(1 / row.ratio)
    assert rows["VRF verify_batch 8, 1 thread"].items == 8
    assert any(name.startswith("VRF verify_batch 8, all cores") for name in rows)
    # The existing rows come first, unchanged.
    assert [r.name for r in report.rows[:5]] == [
        "verify, one signature",
        "OpenSSL (cryptography), one signature",
        "verify_batch 1, 1 thread",
        "verify_batch 8, 1 thread",
        f"verify_batch 8, {bench._threads_label(None)}",
    ]


def test_differential_row_counts_the_cases() -> None:
    if _native.verify_backend() != "avx512ifma":
        with pytest.raises(RuntimeError, match="no AVX-512 IFMA"):
            bench.differential_row(100, seed=2)
        return
    row = bench.differential_row(500, seed=2)
    assert row.items >= 500 and row.target_met
    assert row.extra["disagreements"] == 0
    assert row.extra["cases valid"] > 0 and row.extra["cases small-order A and R"] > 0


def test_openssl_agrees_on_valid_and_corrupted_signatures() -> None:
    data = bench.Signatures(3, message_size=50, seed=4)
    check = bench.openssl_verifier(data.public_keys[0])
    assert check is not None
    assert check(data.messages[0], data.signatures[0])
    corrupted, _ = data.corrupted(1.0, seed=4)
    assert not check(data.messages[0], corrupted[0])


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
        ({"differential": -1}, "differential must be >= 0"),
    ],
)
def test_bad_options(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        bench.run(**options)
