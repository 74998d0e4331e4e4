"""The reward level and the verifiers' split (docs/protocol.md §16,
`echorand.protocol.incentives`)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from echorand._native import AccountState
from echorand.protocol.incentives import (
    next_level,
    producer_reward,
    verifier_credits,
    verifier_pool,
)
from echorand.protocol.params import Rewards
from echorand.wire.messages import Certificate

REWARDS = Rewards(floor=100, ceiling=1100, window=10, decay=1, producer_share=30)
SIG = bytes(64)
HASH = b"h" * 32


def cert(votes: list[int], subs: list[tuple[int, int, int]] = ()) -> Certificate:
    return Certificate(
        9, 4, 0, HASH, 3, [(s, SIG) for s in votes], [(p, s, m, SIG) for p, s, m in subs]
    )


def test_no_rewards_mint_nothing() -> None:
    assert Rewards().enabled is False
    assert next_level(Rewards(), 0, 0) == 0 and next_level(Rewards(), 0, 64) == 0


def test_the_level_follows_empty_blocks_up_at_once() -> None:
    assert next_level(REWARDS, 100, 0) == 100
    assert next_level(REWARDS, 100, 5) == 600
    assert next_level(REWARDS, 100, 10) == 1100
    assert next_level(REWARDS, 100, 3) == 400  # floor + 1000 * 3 // 10


def test_the_level_decays_back_to_the_floor_when_blocks_are_full_again() -> None:
    levels = [1100]
    while levels[-1] != 100:
        levels.append(next_level(REWARDS, levels[-1], 0))
    # Half the gap each round (decay = 1), rounded so that it reaches the floor.
    assert levels == [1100, 600, 350, 225, 162, 131, 115, 107, 103, 101, 100]
    assert next_level(REWARDS, 100, 0) == 100


def test_a_slower_decay_keeps_more_of_the_gap() -> None:
    slow = Rewards(floor=0, ceiling=1024, window=4, decay=3)
    assert next_level(slow, 1024, 0) == 896  # 1024 - 1024 / 8
    assert next_level(slow, 1024, 1) == 896  # the target, 256, is lower
    assert next_level(slow, 100, 2) == 512


@given(
    floor=st.integers(0, 10**6),
    span=st.integers(0, 10**6),
    window=st.integers(1, 100),
    decay=st.integers(0, 32),
    history=st.lists(st.integers(0, 100), max_size=30),
)
def test_the_level_stays_between_floor_and_ceiling(floor, span, window, decay, history) -> None:
    rewards = Rewards(floor=floor, ceiling=floor + span, window=window, decay=decay)
    level = floor
    for empties in history:
        target = floor + span * min(empties, window) // window
        level = next_level(rewards, level, min(empties, window))
        assert rewards.floor <= target <= level <= rewards.ceiling or not rewards.enabled


def test_empties_outside_the_window_are_refused() -> None:
    with pytest.raises(ValueError, match=r"empties must be in \[0, 10\]"):
        next_level(REWARDS, 100, 11)


def test_the_producer_and_the_verifiers_share_the_level() -> None:
    assert producer_reward(REWARDS, 1000) == 300 and verifier_pool(REWARDS, 1000) == 700
    assert producer_reward(REWARDS, 7) + verifier_pool(REWARDS, 7) == 7


def test_verifiers_are_paid_by_seats() -> None:
    credits = verifier_credits(1000, cert([1, 2, 5]), {1: 1, 2: 3, 5: 6, 8: 4})
    assert credits == [(1, 100), (2, 300), (5, 600)]


def test_an_explicit_delegate_earns_for_its_principal_a_fallback_for_itself() -> None:
    seats = {1: 2, 4: 3, 6: 5}
    credits = verifier_credits(1000, cert([1], [(4, 9, 1), (6, 1, 2)]), seats)
    # 4 delegated to 9 (mode 1): 4 is paid. 6 was offline, 1 its fallback: 1 is paid for 6.
    assert credits == [(1, 200 + 500), (4, 300)]


def test_entries_without_seats_earn_nothing_and_remainders_are_not_minted() -> None:
    credits = verifier_credits(100, cert([1, 2, 3]), {1: 1, 2: 1, 3: 1})
    assert credits == [(1, 33), (2, 33), (3, 33)]
    assert verifier_credits(100, cert([1, 7]), {1: 2}) == [(1, 100)]
    assert verifier_credits(100, cert([7]), {1: 2}) == []
    assert verifier_credits(0, cert([1]), {1: 2}) == []


@given(
    seats=st.dictionaries(st.integers(0, 50), st.integers(1, 40), min_size=1, max_size=30),
    pool=st.integers(0, 10**12),
)
def test_the_split_never_pays_more_than_the_pool(seats, pool) -> None:
    credits = verifier_credits(pool, cert(sorted(seats)), seats)
    paid = sum(units for _, units in credits)
    assert paid <= pool and pool - paid < len(seats)
    assert [a for a, _ in credits] == sorted({a for a, _ in credits})


# --- the state applies credits ------------------------------------------------------------


def state(balances: list[int]) -> AccountState:
    accounts = b"".join(bytes([i + 1]) * 32 + b.to_bytes(8, "big") for i, b in enumerate(balances))
    return AccountState(accounts, check_keys=False)


def test_credits_are_minted_after_the_fees() -> None:
    s = state([10, 20, 30])
    changes = s.apply(b"", credits=[(0, 5), (2, 7)])
    assert changes.minted == 12 and s.total == 72
    assert [s.balance(i) for i in range(3)] == [15, 20, 37]


def test_a_credit_to_an_unknown_account_refuses_the_block() -> None:
    s = state([10])
    with pytest.raises(ValueError, match="reward for account 1, which has none"):
        s.prepare(b"", credits=[(1, 5)])
    with pytest.raises(TypeError, match=r"credits\[0\] must be an \(account, units\) pair"):
        s.prepare(b"", credits=[5])
    with pytest.raises(ValueError, match=r"credits\[0\].units"):
        s.prepare(b"", credits=[(0, -1)])
    assert s.total == 10


def test_minting_never_takes_the_supply_to_2_63() -> None:
    s = state([2**63 - 10])
    with pytest.raises(ValueError, match="would reach the limit of 2\\^63"):
        s.prepare(b"", credits=[(0, 10)])
    assert s.prepare(b"", credits=[(0, 9)]).minted == 9
