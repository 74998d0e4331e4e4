"""The stake table and sortition of PROTOCOL §3 against a slow pure-Python model."""

from __future__ import annotations

import copy
import hashlib
from array import array
from collections import Counter

import numpy as np
import pytest
from _sortition_model import model_chain, model_committee
from hypothesis import given
from hypothesis import strategies as st

from echorand.protocol.sortition import (
    MAX_SEATS,
    StakeTable,
    priority,
    producers,
    stake_round,
    verifiers,
    vrf_chain,
    weights,
)

LIMIT = 2**63
"""The total stake stays below this (PROTOCOL §1)."""


# --- strategies --------------------------------------------------------------


def fit_total(balances: list[int]) -> list[int]:
    """Scale the balances down so that their total is below 2^63."""
    total = sum(balances)
    if total < LIMIT:
        return balances
    return [b * (LIMIT - 1) // total for b in balances]


def with_stake(balances: list[int]) -> list[int]:
    """Give an all-zero ledger one coin, so that W > 0."""
    return balances if sum(balances) > 0 else [*balances, 1]


small = st.lists(st.integers(0, 10), max_size=60)
sparse = st.lists(st.sampled_from([0, 0, 0, 0, 1, 7]), max_size=60)
whales = st.tuples(small, st.integers(10**12, 10**18), small).map(lambda t: [*t[0], t[1], *t[2]])
huge = st.lists(st.integers(0, LIMIT - 1), min_size=1, max_size=30).map(fit_total)
near_limit = st.lists(st.integers(1, 2**40), min_size=1, max_size=30).map(
    lambda b: [*b[:-1], LIMIT - 1 - sum(b[:-1])]
)
one = st.integers(1, LIMIT - 1).map(lambda b: [b])
ledgers = st.one_of(small, sparse, whales, huge, near_limit, one).map(with_stake)
seeds = st.binary(min_size=32, max_size=32)
rounds = st.integers(1, 2**64 - 1)
steps = st.integers(1, 2**32 - 1)


# --- the hash chain ----------------------------------------------------------


@given(
    seed=seeds,
    round=st.integers(0, 2**64 - 1),
    step=st.integers(0, 2**32 - 1),
    count=st.integers(0, 40),
)
def test_vrf_chain_is_the_hashlib_chain(seed: bytes, round: int, step: int, count: int) -> None:
    assert vrf_chain(seed, round, step, count) == b"".join(model_chain(seed, round, step, count))


def test_vrf_chain_of_a_long_chain_matches_hashlib() -> None:
    out = vrf_chain(bytes(range(32)), 7, 3, 5000)
    assert len(out) == 5000 * 32
    assert out == b"".join(model_chain(bytes(range(32)), 7, 3, 5000))


def test_vrf_chain_takes_a_bytearray_seed() -> None:
    seed = bytearray(b"\x05" * 32)
    assert vrf_chain(seed, 1, 1, 2) == b"".join(model_chain(bytes(seed), 1, 1, 2))


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        ((bytes(31), 1, 1, 1), ValueError, "seed must be 32 bytes, got 31"),
        ((bytes(33), 1, 1, 1), ValueError, "seed must be 32 bytes, got 33"),
        ((bytes(32), -1, 1, 1), ValueError, "round"),
        ((bytes(32), 2**64, 1, 1), ValueError, "round"),
        ((bytes(32), 1, 2**32, 1), ValueError, "step"),
        ((bytes(32), 1, 1, -1), ValueError, "count"),
        ((bytes(32), 1, 1, 2**22 + 1), ValueError, "count"),
        ((bytes(32), 1.0, 1, 1), TypeError, "round must be an int"),
        (("x" * 32, 1, 1, 1), TypeError, "seed"),
    ],
)
def test_vrf_chain_refuses_bad_arguments(args: tuple, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        vrf_chain(*args)


# --- committees --------------------------------------------------------------


@given(balances=ledgers, seed=seeds, round=rounds, step=steps, size=st.integers(0, 40))
def test_committee_is_the_model(
    balances: list[int], seed: bytes, round: int, step: int, size: int
) -> None:
    table = StakeTable(balances)
    assert table.committee(seed, round, step, size) == model_committee(
        balances, seed, round, step, size
    )


@given(balances=ledgers, seed=seeds, round=rounds, step=steps, size=st.integers(0, 40))
def test_weights_count_the_seats_in_order_of_first_seat(
    balances: list[int], seed: bytes, round: int, step: int, size: int
) -> None:
    table = StakeTable(balances)
    seats = model_committee(balances, seed, round, step, size)
    got = table.weights(seed, round, step, size)
    assert got == Counter(seats)
    assert list(got) == list(dict.fromkeys(seats))
    assert weights(seats) == got
    assert list(weights(seats)) == list(got)


@given(balances=ledgers, seed=seeds, size=st.integers(1, 60))
def test_zero_balance_accounts_hold_no_seats(balances: list[int], seed: bytes, size: int) -> None:
    seats = StakeTable(balances).committee(seed, 1, 2, size)
    assert all(balances[a] > 0 for a in seats)


def test_a_big_random_ledger_matches_the_model() -> None:
    rng = np.random.default_rng(20240601)
    balances = rng.integers(0, 10**9, 20_000, dtype=np.uint64)
    balances[rng.integers(0, 20_000, 5000)] = 0
    balances[123] = 10**15  # a whale
    as_list = balances.tolist()
    table = StakeTable(balances)
    seed = hashlib.sha256(b"big ledger").digest()
    for step in (1, 2, 17):
        assert table.committee(seed, 9, step, 3000) == model_committee(as_list, seed, 9, step, 3000)


def test_a_known_committee() -> None:
    """Pinned values: a change to the definition must show up here.

    W = 455, prefix sums 5, 5, 6, 306, 306, 348, 355, 455; x_0 = int_be(VRF_0) mod W
    = 383, so seat 0 goes to account 7 (the first prefix sum above 383).
    """
    balances = [5, 0, 1, 300, 0, 42, 7, 100]
    seed = hashlib.sha256(b"echorand").digest()
    vrf0 = hashlib.sha256(seed + (3).to_bytes(8, "big") + (2).to_bytes(4, "big")).digest()
    assert int.from_bytes(vrf0, "big") % 455 == 383
    assert StakeTable(balances).committee(seed, 3, 2, 16) == [
        7,
        2,
        3,
        3,
        5,
        5,
        3,
        2,
        3,
        7,
        3,
        3,
        3,
        3,
        7,
        3,
    ]


def test_one_account_holds_every_seat() -> None:
    table = StakeTable([0, 0, 3, 0])
    assert table.committee(bytes(32), 1, 1, 50) == [2] * 50


def test_the_total_may_reach_two_to_the_63_minus_one() -> None:
    table = StakeTable([LIMIT - 2, 1])
    assert table.total == LIMIT - 1
    seed = b"\xff" * 32
    assert table.committee(seed, 5, 5, 30) == model_committee([LIMIT - 2, 1], seed, 5, 5, 30)


@pytest.mark.parametrize("balances", [[], [0], [0, 0, 0]])
def test_a_committee_of_a_zero_total_is_refused(balances: list[int]) -> None:
    with pytest.raises(ValueError, match="stake table total is zero"):
        StakeTable(balances).committee(bytes(32), 1, 1, 1)


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        ((bytes(31), 1, 1, 1), ValueError, "seed must be 32 bytes, got 31"),
        ((b"", 1, 1, 1), ValueError, "seed must be 32 bytes, got 0"),
        ((bytes(32), 0, 1, 1), ValueError, "round must be in 1"),
        ((bytes(32), 1, 0, 1), ValueError, "step must be in 1"),
        ((bytes(32), -3, 1, 1), ValueError, "round"),
        ((bytes(32), 1, 1, -1), ValueError, "size"),
        ((bytes(32), 1, 1, MAX_SEATS + 1), ValueError, "size"),
        ((bytes(32), 1, "2", 1), TypeError, "step must be an int"),
    ],
)
def test_a_committee_with_bad_arguments_is_refused(args: tuple, error: type, match: str) -> None:
    table = StakeTable([1, 2, 3])
    with pytest.raises(error, match=match):
        table.committee(*args)
    with pytest.raises(error, match=match):
        table.weights(*args)


# --- updates, copies, growth -------------------------------------------------


@st.composite
def ledger_and_updates(draw: st.DrawFn) -> tuple[list[int], list[dict[int, int]]]:
    balances = draw(st.one_of(small, sparse, whales).map(with_stake))
    n = len(balances)
    value = st.one_of(st.integers(0, 10), st.just(0), st.integers(0, 10**15))
    batches = draw(st.lists(st.dictionaries(st.integers(0, n - 1), value, max_size=8), max_size=6))
    return balances, batches


@given(case=ledger_and_updates(), seed=seeds)
def test_updates_match_the_model(case: tuple[list[int], list[dict[int, int]]], seed: bytes) -> None:
    balances, batches = case
    table = StakeTable(balances)
    model = list(balances)
    for batch in batches:
        table.update(batch)
        model = [batch.get(i, b) for i, b in enumerate(model)]
        assert table.total == sum(model)
        assert [table.balance(i) for i in range(len(model))] == model
        if sum(model) > 0:
            assert table.committee(seed, 4, 2, 25) == model_committee(model, seed, 4, 2, 25)


def test_setting_a_balance_to_zero_and_back_restores_the_committee() -> None:
    balances = [3, 9, 1, 0, 27]
    table = StakeTable(balances)
    seed = bytes(range(32))
    before = table.committee(seed, 2, 3, 100)
    table.update({1: 0, 4: 0})
    assert 1 not in table.committee(seed, 2, 3, 100)
    assert table.committee(seed, 2, 3, 100) == model_committee([3, 0, 1, 0, 0], seed, 2, 3, 100)
    table.update({1: 9, 4: 27})
    assert table.committee(seed, 2, 3, 100) == before


@given(balances=ledgers, seed=seeds)
def test_a_copy_is_independent_of_the_original(balances: list[int], seed: bytes) -> None:
    table = StakeTable(balances)
    for snapshot in (table.copy(), copy.copy(table), copy.deepcopy(table)):
        snapshot.update({0: 0})
        snapshot.append(balances[0])
        assert len(table) == len(balances)
        assert table.total == sum(balances)
        assert table.balance(0) == balances[0]
        assert table.committee(seed, 1, 2, 10) == model_committee(balances, seed, 1, 2, 10)
    # Lower (never raise) the largest balance, so the total stays below 2**63.
    whale = max(range(len(balances)), key=balances.__getitem__)
    table.update({whale: balances[whale] // 2})
    snapshot = table.copy()
    table.update({whale: balances[whale] // 4})
    assert snapshot.balance(whale) == balances[whale] // 2
    assert table.balance(whale) == balances[whale] // 4


@given(first=st.one_of(small, sparse), rest=st.one_of(small, whales), seed=seeds)
def test_extend_and_append_equal_a_table_built_at_once(
    first: list[int], rest: list[int], seed: bytes
) -> None:
    grown = StakeTable(first)
    grown.extend(rest[: len(rest) // 2])
    for b in rest[len(rest) // 2 :]:
        assert grown.append(b) == len(grown) - 1
    balances = first + rest
    assert len(grown) == len(balances)
    assert grown.total == sum(balances)
    if sum(balances) > 0:
        assert grown.committee(seed, 3, 3, 30) == StakeTable(balances).committee(seed, 3, 3, 30)


def test_extend_grows_a_large_table_in_place() -> None:
    rng = np.random.default_rng(7)
    balances = rng.integers(0, 1000, 5000, dtype=np.uint64)
    grown = StakeTable(balances[:1])
    for lo, hi in ((1, 2), (2, 1000), (1000, 1001), (1001, 5000)):
        grown.extend(balances[lo:hi])
    seed = bytes(32)
    assert grown.committee(seed, 1, 2, 500) == StakeTable(balances).committee(seed, 1, 2, 500)


def test_an_update_with_an_unknown_account_changes_nothing() -> None:
    table = StakeTable([1, 2, 3])
    with pytest.raises(ValueError, match="unknown account 3: the stake table has 3 accounts"):
        table.update({0: 100, 3: 1})
    with pytest.raises(ValueError, match="unknown account -1"):
        table.update({0: 100, -1: 1})
    assert [table.balance(i) for i in range(3)] == [1, 2, 3]
    assert table.total == 6


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        ({1: -1}, ValueError, "balance of account 1 must not be negative, got -1"),
        ({2: 2**64}, ValueError, "balance of account 2 must fit a u64"),
        ({0: 1, 1: LIMIT - 3}, ValueError, "total stake must stay below 2\\^63"),
        ({0: 2**64 - 1, 1: 0, 2: 0}, ValueError, "total stake must stay below 2\\^63"),
        ({1: "5"}, TypeError, "balance of account 1 must be an int, got str"),
        ({"1": 5}, TypeError, "account id must be an int, got str"),
    ],
)
def test_a_bad_update_is_refused_and_changes_nothing(change: dict, error: type, match: str) -> None:
    table = StakeTable([1, 2, 3])
    with pytest.raises(error, match=match):
        table.update({0: 50, **change})
    assert [table.balance(i) for i in range(3)] == [1, 2, 3]
    assert table.total == 6
    assert table.committee(bytes(32), 1, 1, 20) == model_committee([1, 2, 3], bytes(32), 1, 1, 20)


def test_update_takes_any_mapping_and_refuses_other_things() -> None:
    from types import MappingProxyType

    table = StakeTable([1, 2, 3])
    table.update(MappingProxyType({2: 0}))
    assert table.balance(2) == 0
    with pytest.raises(TypeError, match="update takes a mapping"):
        table.update([(0, 1)])  # type: ignore[arg-type]


def test_growth_past_the_limit_is_refused_and_changes_nothing() -> None:
    table = StakeTable([LIMIT - 10])
    with pytest.raises(ValueError, match="balance of account 1 brings it to at least"):
        table.append(10)
    with pytest.raises(ValueError, match="balance of account 3 brings it to at least"):
        table.extend([1, 1, 8])
    assert len(table) == 1
    assert table.total == LIMIT - 10
    table.extend([1, 1, 7])
    assert table.total == LIMIT - 1


# --- construction ------------------------------------------------------------


BALANCES = [0, 5, 2**40, 1, 0, 77, 2**62, 3]


def _buffers() -> list[tuple[str, object]]:
    native = array("Q", BALANCES).tobytes()
    out: list[tuple[str, object]] = [
        ("list", list(BALANCES)),
        ("tuple", tuple(BALANCES)),
        ("generator", (b for b in BALANCES)),
        ("array Q", array("Q", BALANCES)),
        ("array q", array("q", BALANCES)),
        ("numpy uint64", np.array(BALANCES, dtype=np.uint64)),
        ("numpy int64", np.array(BALANCES, dtype=np.int64)),
        ("numpy <u8", np.array(BALANCES, dtype="=u8")),
        ("bytes", native),
        ("bytearray", bytearray(native)),
        ("memoryview", memoryview(native)),
        ("memoryview Q", memoryview(native).cast("Q")),
        ("numpy uint8", np.frombuffer(native, dtype=np.uint8)),
    ]
    if array("L").itemsize == 8:
        out.append(("array L", array("L", BALANCES)))
    return out


@pytest.mark.parametrize(("kind", "balances"), _buffers(), ids=[k for k, _ in _buffers()])
def test_balances_come_in_many_shapes(kind: str, balances: object) -> None:
    table = StakeTable(balances)
    assert len(table) == len(BALANCES), kind
    assert table.total == sum(BALANCES)
    assert [table.balance(i) for i in range(len(BALANCES))] == BALANCES
    seed = b"\x11" * 32
    assert table.committee(seed, 6, 2, 64) == model_committee(BALANCES, seed, 6, 2, 64)


def test_a_buffer_is_copied_not_shared() -> None:
    source = np.array([1, 2, 3], dtype=np.uint64)
    table = StakeTable(source)
    source[0] = 1000
    assert table.balance(0) == 1
    table.update({1: 7})
    assert source[1] == 2


def test_an_empty_table() -> None:
    for empty in ([], b"", np.array([], dtype=np.uint64), array("Q")):
        table = StakeTable(empty)
        assert len(table) == 0
        assert table.total == 0
    table.append(4)
    assert table.committee(bytes(32), 1, 1, 3) == [0, 0, 0]


@pytest.mark.parametrize(
    ("balances", "error", "match"),
    [
        ([1, -1], ValueError, "balance of account 1 must not be negative, got -1"),
        ([1, 2, 2**64], ValueError, "balance of account 2 must fit a u64"),
        ([1, 2.0], TypeError, "balance of account 1 must be an int, got float"),
        ([1, None], TypeError, "balance of account 1 must be an int, got NoneType"),
        ("123", TypeError, "got str"),
        (5, TypeError, "balances must be a sequence of ints or a buffer of u64, got int"),
        ([LIMIT - 1, 1], ValueError, "balance of account 1 brings it to at least"),
        ([2**64 - 1], ValueError, "balance of account 0 brings it to at least"),
        (np.array([3, -4], dtype=np.int64), ValueError, "balance of account 1 .* got -4"),
        (array("q", [0, 0, -9]), ValueError, "balance of account 2 must not be negative"),
        (np.array([1], dtype=">u8"), TypeError, "native-endian"),
        (np.array([1.0]), TypeError, "format 'd'"),
        (np.array([1], dtype=np.uint32), TypeError, "4-byte items"),
        (array("i", [1]), TypeError, "format 'i'"),
        (np.ones((2, 2), dtype=np.uint64), ValueError, "one-dimensional"),
        (np.arange(10, dtype=np.uint64)[::2], ValueError, "contiguous"),
        (b"\x00" * 9, ValueError, r"multiple of 8 bytes\), got 9 bytes"),
    ],
)
def test_bad_balances_are_refused(balances: object, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        StakeTable(balances)


def test_balance_of_an_unknown_account_is_refused() -> None:
    table = StakeTable([1])
    with pytest.raises(ValueError, match="unknown account 1"):
        table.balance(1)
    with pytest.raises(ValueError, match="unknown account -1"):
        table.balance(-1)


def test_a_table_uses_eight_bytes_per_account() -> None:
    n = 100_000
    fixed = StakeTable([]).nbytes
    table = StakeTable(np.ones(n, dtype=np.uint64))
    assert table.nbytes == fixed + 8 * n
    assert table.copy().nbytes == table.nbytes
    table.append(1)
    assert 8 * (n + 1) < table.nbytes - fixed <= 8 * (n + n // 8)


def test_repr_and_len() -> None:
    table = StakeTable([1, 2])
    assert len(table) == 2
    assert repr(table) == "StakeTable(<2 accounts, total 3>)"


# --- the helpers of echorand.protocol.sortition -----------------------------------------


def test_producers_are_the_seats_of_step_one() -> None:
    table = StakeTable([4, 0, 9, 1])
    seed = bytes(range(32))
    assert producers(table, seed, 12, 20) == model_committee([4, 0, 9, 1], seed, 12, 1, 20)


def test_verifiers_are_the_seats_of_their_step() -> None:
    table = StakeTable([4, 0, 9, 1])
    seed = bytes(range(32))
    assert verifiers(table, seed, 12, 5, 40) == model_committee([4, 0, 9, 1], seed, 12, 5, 40)
    with pytest.raises(ValueError, match="verifier steps are >= 2"):
        verifiers(table, seed, 12, 1, 40)


def test_priority_is_the_lowest_seat_best_first() -> None:
    seats = [7, 3, 7, 1, 3, 9]
    assert priority(seats) == {7: 0, 3: 1, 1: 3, 9: 5}
    assert list(priority(seats)) == [7, 3, 1, 9]
    assert priority([]) == {}


@given(seats=st.lists(st.integers(0, 10), max_size=50))
def test_priority_and_weights_agree_with_a_loop(seats: list[int]) -> None:
    lowest: dict[int, int] = {}
    for i, a in enumerate(seats):
        lowest.setdefault(a, i)
    assert list(priority(seats).items()) == list(lowest.items())
    assert weights(seats) == {a: seats.count(a) for a in lowest}


def test_stake_round_is_two_blocks_back() -> None:
    assert [stake_round(r) for r in (1, 2, 3, 10)] == [0, 0, 1, 8]
    with pytest.raises(ValueError, match="round must be >= 1"):
        stake_round(0)
