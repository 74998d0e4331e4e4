"""The nearest-rank percentile shared by the simulator, the studies and the devnet."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from echorand.sim.stats import percentile


def test_nearest_rank() -> None:
    values = [15, 20, 35, 40, 50]
    assert percentile(values, 5) == 15
    assert percentile(values, 30) == 20
    assert percentile(values, 40) == 20
    assert percentile(values, 50) == 35
    assert percentile(values, 100) == 50
    assert percentile([], 50) is None


@given(st.lists(st.integers(0, 10**6), min_size=1), st.floats(0, 100))
def test_at_least_pct_percent_at_or_below(values: list[int], pct: float) -> None:
    p = percentile(values, pct)
    assert p in values
    at_or_below = sum(v <= p for v in values)
    assert at_or_below * 100 >= pct * len(values) - 1e-6
    assert sum(v < p for v in values) * 100 < pct * len(values) + 1e-6 or p == min(values)
