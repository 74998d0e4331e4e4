"""Small statistics shared by the simulator, the studies and the devnet."""

from __future__ import annotations

import math
from collections.abc import Iterable


def percentile(values: Iterable[int], pct: float) -> int | None:
    """The nearest-rank percentile: the smallest value with at least `pct` % of the values at
    or below it (`pct` in [0, 100]); None when there are no values."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = math.ceil(len(ordered) * pct / 100)
    return ordered[min(len(ordered) - 1, max(0, rank - 1))]


def binomial_pmf(n: int, p: float) -> list[float]:
    """P(Binomial(n, p) = x) for x = 0 .. n, each term from logarithms (no overflow for big n)."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be in [0, 1], got {p}")
    if p in (0.0, 1.0):
        return [float(x == round(p * n)) for x in range(n + 1)]
    log_p, log_q, top = math.log(p), math.log1p(-p), math.lgamma(n + 1)
    return [
        math.exp(top - math.lgamma(x + 1) - math.lgamma(n - x + 1) + x * log_p + (n - x) * log_q)
        for x in range(n + 1)
    ]
