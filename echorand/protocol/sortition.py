"""Sortition: who sits in the committee of a step (PROTOCOL §3).

```
VRF_0(r, s) = H(Q[r-1] || u64be(r) || u32be(s))
VRF_i(r, s) = H(VRF_{i-1}(r, s))
x_i         = int_be(VRF_i(r, s)) mod W          (all 256 bits)
seat i      = the smallest account id j with  balance[0] + ... + balance[j] > x_i
```

The work is native (`echorand._native`): the hash chain runs on the CPU's
SHA extensions and the seats are found by descending a Fenwick tree of the
balances, O(log n) each.

- `StakeTable(balances)`: the balances by account id (dense, from 0); a
  sequence of ints, or a buffer of native-endian u64 (`array('Q')`, a numpy
  `uint64`/`int64` array, `bytes` of packed u64).
- `table.committee(seed, round, step, size)`: the account of each seat.
- `table.update({account_id: new_balance})`: in place, O(log n) each, all or
  nothing.

`A_1`, the producers, are the seats `0 .. N_g-1` of step 1; `A_s`, the
verifiers of step `s >= 2`, the seats `0 .. N_c-1` of step `s`. An account
can hold several seats: its weight in a step is the number it holds.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from operator import itemgetter

from echorand._native import MAX_SEATS, StakeTable, vrf_chain

__all__ = [
    "MAX_SEATS",
    "PRODUCER_STEP",
    "StakeTable",
    "priority",
    "producers",
    "stake_round",
    "verifiers",
    "vrf_chain",
    "weights",
]

PRODUCER_STEP = 1
"""Step 1: block proposals, by the producers A_1."""


def stake_round(round: int) -> int:
    """The block whose balances make the stake table of `round`: max(0, round - 2).

    Accounts created or funded in round r take part from round r + 2; round 0
    is the genesis.
    """
    if round < 1:
        raise ValueError(f"round must be >= 1, got {round}")
    return max(0, round - 2)


def producers(table: StakeTable, seed: bytes, round: int, n_g: int) -> list[int]:
    """A_1: the account of each producer seat 0 .. n_g-1 (step 1) of `round`.

    `seed` is Q[round-1]. Seat order is priority order: seat 0 is the best.
    """
    return table.committee(seed, round, PRODUCER_STEP, n_g)


def verifiers(table: StakeTable, seed: bytes, round: int, step: int, n_c: int) -> list[int]:
    """A_step: the account of each verifier seat 0 .. n_c-1 of `step` (>= 2) of `round`."""
    if step <= PRODUCER_STEP:
        raise ValueError(f"verifier steps are >= 2, got step {step}")
    return table.committee(seed, round, step, n_c)


def weights(seats: Sequence[int]) -> dict[int, int]:
    """Seats held per account (its weight in the step), in order of first seat."""
    return dict(Counter(seats))


def priority(seats: Sequence[int]) -> dict[int, int]:
    """The lowest seat index each account holds in A_1, best (lowest) first.

    `seats` is what `producers` returned; a lower index is a better priority.
    """
    n = len(seats)
    # Reversed, the last write for an account is its lowest index.
    lowest = dict(zip(reversed(seats), range(n - 1, -1, -1), strict=True))
    return dict(sorted(lowest.items(), key=itemgetter(1)))
