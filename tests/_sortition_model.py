"""Sortition (PROTOCOL §3) in slow pure Python: hashlib for the chain, prefix sums and
bisect for the seats. The model the native stake tables are checked against."""

from __future__ import annotations

import hashlib
from bisect import bisect_right
from collections import Counter
from itertools import accumulate


def model_chain(seed: bytes, round: int, step: int, count: int) -> list[bytes]:
    """VRF_0 .. VRF_{count-1} with hashlib."""
    h = hashlib.sha256(seed + round.to_bytes(8, "big") + step.to_bytes(4, "big")).digest()
    links = []
    for _ in range(count):
        links.append(h)
        h = hashlib.sha256(h).digest()
    return links


def model_committee(
    balances: list[int], seed: bytes, round: int, step: int, size: int
) -> list[int]:
    """Seat i: the smallest j with sum(balances[0..=j]) > int_be(VRF_i) mod W."""
    prefix = list(accumulate(balances))
    total = prefix[-1]
    return [
        bisect_right(prefix, int.from_bytes(link, "big") % total)
        for link in model_chain(seed, round, step, size)
    ]


def model_weights(
    balances: list[int], seed: bytes, round: int, step: int, size: int
) -> dict[int, int]:
    """Seats per account, in order of first seat."""
    return dict(Counter(model_committee(balances, seed, round, step, size)))
