"""The native leader order and the seed-002 experiment against slow pure-Python models."""

from __future__ import annotations

import argparse
import hashlib
import json
from collections import Counter
from collections.abc import Callable
from math import factorial
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from echorand._native import LEADER_MAX_VALIDATORS, LeaderStudy, leader_order
from echorand.protocol.leader import max_faulty, round_robin_order
from echorand.tools.studies.leader import (
    SEED_002,
    add_leader_arguments,
    first_waits,
    run_experiment,
    run_leader,
)
from echorand.tools.studies.leader_plots import save_plots

AuthorRule = Callable[[list[int]], int]

# --- the study's notebook, with exact integers ----------------------------------------------


def kth_permutation(lst: list[int], k: int) -> list[int]:
    """The study's kth_permutation, `int(k / bign)` replaced by `k // bign`."""
    lst = lst[:]
    res = []
    bign = factorial(len(lst))
    for ic in range(len(lst) - 1, -1, -1):
        bign = bign // (ic + 1)
        res.append(lst.pop(k // bign))
        k = k % bign
    return res


def quick_rule(shuffled: list[int]) -> int:
    return shuffled[0]


def slow_honest_rule(k: int, f: int) -> AuthorRule:
    """The study's block_author_slow_honest_nodes with honest_slow = k.

    The study returns None when the order ends before position k without a
    Byzantine validator; the first of the order authors the block then.
    """

    def rule(shuffled: list[int]) -> int:
        for ic, validator in enumerate(shuffled):
            if validator < f:
                return validator
            if ic >= k:
                return shuffled[0]
        return shuffled[0]

    return rule


def generate_blocks(
    n_blocks: int, n: int, f: int, rule: AuthorRule, seed: bytes | None = None
) -> tuple[list[list[int]], list[int]]:
    """The study's generate_blocks; with `seed`, T of round r = h + 1 is H(Q[r-1] || u64be(r))."""
    mat = [[0] * (n - f) for _ in range(n)]
    authors = []
    locked: list[int] = []
    m_fac = factorial(n - f)
    q = seed
    for h in range(n_blocks):
        allowed = [v for v in range(n) if v not in locked]
        if q is None:
            digest = hashlib.sha256(h.to_bytes(4, "big")).digest()
        else:
            q = digest = hashlib.sha256(q + (h + 1).to_bytes(8, "big")).digest()
        shuffled = kth_permutation(allowed, int.from_bytes(digest, "big") % m_fac)
        for ic, new in enumerate(shuffled[: n - f]):
            mat[new][ic] += 1
        author = rule(shuffled)
        authors.append(author)
        locked.append(author)
        locked = locked[-f:] if f else []  # the study's [-F:] keeps everything when F = 0
    return mat, authors


def calculate_time_to_wait(authors: list[int], f: int) -> tuple[list[int], int]:
    """The study's calculate_time_to_wait: the waits, and the last height with a later honest block.

    The study returns `time_to_wait[:last]`, which leaves out height `last`
    itself although its wait is known; we count it.
    """
    n = len(authors)
    time_to_wait = [0] * n
    last = -1
    for h in range(n):
        for ic in range(1, n - h):
            if authors[h + ic] >= f:
                time_to_wait[h] = ic
                last = h
                break
    return time_to_wait, last


# --- the order of one height -----------------------------------------------------------------


@settings(max_examples=300)
@given(n=st.integers(1, LEADER_MAX_VALIDATORS), height=st.integers(0, 2**32 - 1), data=st.data())
def test_native_order_is_the_python_model(n: int, height: int, data: st.DataObject) -> None:
    locked = data.draw(st.lists(st.integers(0, n - 1), max_size=max_faulty(n), unique=True))
    assert leader_order(n, locked, height) == round_robin_order(n, locked, height)


@settings(max_examples=150)
@given(
    n=st.integers(1, 100),
    round_=st.integers(0, 2**64 - 1),
    seed=st.binary(min_size=32, max_size=32),
    data=st.data(),
)
def test_native_seeded_order_is_the_python_model(
    n: int, round_: int, seed: bytes, data: st.DataObject
) -> None:
    locked = data.draw(st.lists(st.integers(0, n - 1), max_size=max_faulty(n), unique=True))
    assert leader_order(n, locked, round_, seed) == round_robin_order(n, locked, round_, seed=seed)


@pytest.mark.parametrize(
    ("n", "bound"),
    [(28, 2**53), (31, 2**64), (52, 2**128), (87, 2**256), (256, 2**256)],
)
def test_exact_where_the_factorial_outgrows_machine_words(n: int, bound: int) -> None:
    # (N - F)! > 2^53: floats are wrong; > 2^64, > 2^128: no machine word holds T;
    # > 2^256: T is the digest itself.
    f = max_faulty(n)
    assert factorial(n - f) > bound
    for height in range(40):
        locked = [(height * 7 + i * 3) % n for i in range(height % (f + 1))]
        locked = list(dict.fromkeys(locked))
        assert leader_order(n, locked, height) == round_robin_order(n, locked, height)
    assert leader_order(n, [], 2**32 - 1) == round_robin_order(n, [], 2**32 - 1)


def test_first_heights_permute_more_than_n_minus_f() -> None:
    # Fewer than F blocks: every unlocked validator is in the order, the head unpermuted.
    for locked in ([], [3], [3, 9], [0, 1, 2, 15]):
        order = leader_order(16, locked, 7)
        assert order == round_robin_order(16, locked, 7)
        assert len(order) == 16 - len(locked)


def native_order(n: int, locked: list[int], height: int) -> list[int]:
    return leader_order(n, locked, height)


@pytest.mark.parametrize("order_of", [round_robin_order, native_order])
@pytest.mark.parametrize(
    ("n", "locked", "height", "message"),
    [
        (0, [], 0, "n_validators"),
        (4, [4], 0, "out of range"),
        (4, [-1], 0, "out of range"),
        (4, [0, 1], 0, "at most F=1"),
        (4, [], 2**32, "height"),
    ],
)
def test_bad_arguments_are_named_alike(
    order_of: Callable[..., list[int]], n: int, locked: list[int], height: int, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        order_of(n, locked, height)


def test_native_order_refuses_what_it_cannot_hold() -> None:
    with pytest.raises(ValueError, match="n_validators"):
        leader_order(LEADER_MAX_VALIDATORS + 1, [], 0)
    with pytest.raises(ValueError, match="seed must be 32 bytes"):
        leader_order(16, [], 0, b"short")
    with pytest.raises(TypeError, match="locked ids must be ints"):
        leader_order(16, ["a"], 0)


# --- the experiment --------------------------------------------------------------------------


def check_against_the_notebook(
    n: int, f: int, blocks: int, slow_honest: int | None, seed: bytes | None = None
) -> None:
    rule = quick_rule if slow_honest is None else slow_honest_rule(slow_honest, f)
    mat, authors = generate_blocks(blocks, n, f, rule, seed)
    study = LeaderStudy(n, f, slow_honest=slow_honest, seed=seed)
    half = blocks // 3
    ours = study.run(half) + study.run(blocks - half)  # resumable: the same as one run
    assert list(ours) == authors
    assert study.counts == mat
    assert study.author_counts == [authors.count(v) for v in range(n)]
    waits, last = calculate_time_to_wait(authors, f)
    assert study.wait_histogram == dict(Counter(waits[: last + 1]))
    assert study.dropped_tail == blocks - last - 1
    assert study.height == blocks


@pytest.mark.parametrize("slow_honest", [None, 5, 0, 1, 3])
def test_the_seed_experiment_matches_the_notebook(slow_honest: int | None) -> None:
    check_against_the_notebook(16, 5, 3000, slow_honest)


@pytest.mark.parametrize(
    ("n", "f", "slow_honest"),
    [
        (4, 1, None),
        (7, 2, 2),
        (10, 0, None),  # no Byzantine validator, nobody locked
        (10, 6, 1),  # more than N/3 Byzantine: still at most F + 1 blocks to wait
        (6, 5, None),  # one validator proposes at each height
        (5, 1, 9),  # K beyond the order: the study's function falls through
        (31, 10, 4),  # (N - F)! > 2^64
        (52, 17, None),  # (N - F)! > 2^128
    ],
)
def test_other_sizes_match_the_notebook(n: int, f: int, slow_honest: int | None) -> None:
    check_against_the_notebook(n, f, 700, slow_honest)


@pytest.mark.parametrize("slow_honest", [None, 5])
def test_seeded_experiment_follows_the_seed_chain(slow_honest: int | None) -> None:
    q0 = hashlib.sha256(b"Q[0]").digest()
    check_against_the_notebook(16, 5, 1500, slow_honest, q0)
    # Step i is round i + 1 of PROTOCOL §7 with Q[r-1]: the order of the Python model.
    study = LeaderStudy(16, 5, slow_honest=slow_honest, seed=q0)
    authors = study.run(50)
    q, locked = q0, []
    for r in range(1, 51):
        order = round_robin_order(16, locked, r, seed=q)
        assert authors[r - 1] in order
        if slow_honest is None:
            assert authors[r - 1] == order[0]
        locked = [*locked, authors[r - 1]][-5:]
        q = hashlib.sha256(q + r.to_bytes(8, "big")).digest()
    assert study.seed == q


@pytest.mark.parametrize("slow_honest", [None, 0, 2, 5, 100])
@pytest.mark.parametrize(("n", "f"), [(16, 5), (4, 1), (40, 13), (12, 8)])
def test_an_honest_block_within_f_plus_one(n: int, f: int, slow_honest: int | None) -> None:
    study = LeaderStudy(n, f, slow_honest=slow_honest)
    study.run(200_000)
    assert max(study.wait_histogram) <= f + 1
    assert study.dropped_tail <= f + 1


@pytest.mark.parametrize("slow_honest", [None, 5])
def test_the_seed_figures_on_ten_million_blocks(slow_honest: int | None) -> None:
    seed = SEED_002[slow_honest]
    result = run_experiment(16, 5, 10_000_000, slow_honest=slow_honest)
    assert f"{result.honest_share * 100:.2f}" == f"{seed.honest_percent:.2f}"
    assert f"{result.position_std:.2f}" == f"{seed.position_std:.2f}"
    assert result.position_mean == 625_000
    assert tuple(result.first_authors) == seed.first_authors
    assert tuple(result.first_waits) == seed.first_waits
    assert result.dropped_tail == seed.dropped_tail
    assert result.max_wait == 6
    assert result.seed_figures() == seed


def test_first_waits_of_a_short_run() -> None:
    # Heights with no later honest block have no wait.
    assert first_waits(bytes([0, 6, 1, 2]), 5) == [1, None, None, None]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_validators": 0, "byzantine": 0}, "n_validators"),
        ({"n_validators": 257, "byzantine": 0}, "n_validators"),
        ({"n_validators": 4, "byzantine": 4}, "byzantine"),
        ({"n_validators": 4, "byzantine": -1}, "byzantine"),
        ({"n_validators": 4, "byzantine": 1, "slow_honest": -1}, "slow_honest"),
        ({"n_validators": 4, "byzantine": 1, "seed": b"x" * 31}, "seed must be 32 bytes"),
    ],
)
def test_study_parameters_are_checked(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LeaderStudy(**kwargs)


def test_heights_stay_u32() -> None:
    study = LeaderStudy(4, 1)
    with pytest.raises(ValueError, match="2\\*\\*32"):
        study.run(2**32 + 1)
    with pytest.raises(ValueError, match="blocks"):
        study.run(-1)
    assert study.height == 0


# --- the command ------------------------------------------------------------------------------


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_leader_arguments(parser)
    return parser.parse_args(argv)


def test_json_has_the_required_keys(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_leader(parse(["--blocks", "3000", "--slow-honest", "5", "--json"]), save_plots) == 0
    out = json.loads(capsys.readouterr().out)
    required = {"honest_share", "position_mean", "position_std", "first_authors"}
    assert required | {"wait_histogram", "max_wait"} <= out.keys()
    _, authors = generate_blocks(3000, 16, 5, slow_honest_rule(5, 5))
    assert out["honest_share"] == sum(a >= 5 for a in authors) / 3000
    assert out["first_authors"] == authors[:10]
    assert out["position_mean"] == 3000 / 16
    waits, last = calculate_time_to_wait(authors, 5)
    assert out["wait_histogram"] == {str(w): c for w, c in Counter(waits[: last + 1]).items()}
    assert out["max_wait"] == max(waits)


def test_table_and_plots(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        run_leader(
            parse(["--blocks", "2000", "--seeded", "--plot", str(tmp_path)]), plot=save_plots
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "honest blocks" in out
    pngs = sorted(tmp_path.glob("leader-quick-seeded-*.png"))
    assert [p.name.rsplit("-", 1)[1] for p in pngs] == [
        "authors.png",
        "counts.png",
        "positions.png",
        "wait.png",
    ]
    for png in pngs:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_parameters_exit_with_a_message(capsys: pytest.CaptureFixture[str]) -> None:
    args = parse(["--validators", "4", "--byzantine", "4", "--blocks", "10"])
    assert run_leader(args, save_plots) == 2
    assert "byzantine must be below n_validators=4" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse(["--seeded", "abcd"])
