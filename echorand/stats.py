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
