"""The AVX-512 IFMA lane verifier against ed25519-zebra (native `verify_differential`).

The native generator makes valid signatures, random corruptions and every
ZIP 215 edge case (small-order and non-canonical A and R in every encoding,
S >= L, mixed-order points, non-points), deals them into batches of random
sizes and edge-case shares, and compares the lane verifier's answer for each
with ed25519-zebra's single verification. The long run (a million cases) is
`echorand bench verify --differential 1000000`; this is its short form.
"""

from __future__ import annotations

import pytest

from echorand import _native

pytestmark = pytest.mark.skipif(
    _native.verify_backend() != "avx512ifma", reason="the lanes run only on AVX-512 IFMA"
)


def test_generated_cases_agree_with_zebra() -> None:
    tally = _native.verify_differential(4000, seed=11)
    assert tally["cases"] >= 4000
    assert tally["disagreements"] == []
    by_kind = tally["by_kind"]
    assert all(cases > 0 for cases, _ in by_kind.values()), by_kind
    # Kinds that are always valid, never valid, or both, as built.
    assert by_kind["valid"][1] == by_kind["valid"][0]
    assert by_kind["mixed-order A and R"][1] == by_kind["mixed-order A and R"][0]
    assert by_kind["S >= L"][1] == 0 and by_kind["A not a point"][1] == 0
    assert 0 < by_kind["small-order A"][1] < by_kind["small-order A"][0]


def test_a_run_is_reproducible_from_its_seed() -> None:
    a = _native.verify_differential(300, seed=5)
    b = _native.verify_differential(300, seed=5)
    assert (a["cases"], a["accepted"], a["by_kind"]) == (b["cases"], b["accepted"], b["by_kind"])
