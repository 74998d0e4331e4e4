"""Committee security (PROTOCOL §5): the exact binomial tails, checked against an independent
computation, and the genesis check that refuses insecure committees."""

from __future__ import annotations

from fractions import Fraction
from math import comb

import pytest
from hypothesis import given
from hypothesis import strategies as st

from echorand.ledger.genesis import Genesis, GenesisError
from echorand.protocol.params import Params
from echorand.protocol.security import BOUND, analyse, binomial_tail, log2, scientific
from echorand.tools.genesis import add_genesis_arguments, run_genesis


def tail_by_definition(n: int, f: Fraction, t: int) -> Fraction:
    """P[Bin(n, f) > t] term by term in Fractions: slow, independent of the module's
    recurrence."""
    return sum(
        (Fraction(comb(n, k)) * f**k * (1 - f) ** (n - k) for k in range(max(t + 1, 0), n + 1)),
        Fraction(0),
    )


@given(
    n=st.integers(0, 60),
    f=st.fractions(min_value=0, max_value=1, max_denominator=50),
    t=st.integers(-3, 65),
)
def test_the_tail_equals_the_sum_of_its_terms(n: int, f: Fraction, t: int) -> None:
    assert binomial_tail(n, f, t) == tail_by_definition(n, f, t)


def test_the_figures_of_the_issue() -> None:
    # measured while writing the issue, at t_h = 0.69 N_c: the adversary completes two
    # quorums in one step (P[Bin(N_c, f) > 2 t_h - N_c])
    def equivocating(n_c: int, f: Fraction) -> Fraction:
        t_h = n_c * 69 // 100
        return binomial_tail(n_c, f, 2 * t_h - n_c)

    third, fifth = Fraction(1, 3), Fraction(1, 5)
    assert scientific(equivocating(50, third)) == "2.87e-01"
    assert scientific(equivocating(100, third)) == "1.37e-01"
    assert scientific(equivocating(1000, third)) == "8.63e-04"
    assert scientific(equivocating(3000, third)) == "3.61e-08"
    assert scientific(equivocating(1000, fifth)) == "9.02e-40"


def test_log2_and_scientific_do_not_underflow() -> None:
    tiny = Fraction(1, 10**500)
    assert scientific(tiny) == "1.00e-500"
    assert log2(tiny) == pytest.approx(-500 * 3.321928, rel=1e-6)
    assert scientific(Fraction(0)) == "0"


def test_the_default_parameters_are_secure() -> None:
    security = analyse(Params())
    assert security.secure and security.problems() == []
    for threshold in security.thresholds:
        assert threshold.alone <= BOUND and threshold.equivocating <= BOUND


def test_small_committees_are_refused_unless_waived(tmp_path) -> None:
    params = Params(n_c=50, f=Fraction(1, 5))
    security = analyse(params)
    assert not security.secure
    problems = security.problems()
    assert any("t_h = 34" in p and "equivocating" in p for p in problems)
    accounts = bytes(range(32)) + (10).to_bytes(8, "big")
    with pytest.raises(GenesisError, match="the committees are not secure"):
        Genesis(name="small", params=params, seed=bytes(32), accounts=accounts)
    waived = Params(n_c=50, f=Fraction(1, 5), insecure_committee=True)
    genesis = Genesis(name="small", params=waived, seed=bytes(32), accounts=accounts)
    assert genesis.to_json()["security"]["secure"] is False
    # the waiver is in the hash: it is recorded, never silent
    plain = Genesis(name="small", params=Params(), seed=bytes(32), accounts=accounts)
    assert genesis.hash != plain.hash


def test_echorand_genesis_refuses_an_insecure_committee_without_the_flag(tmp_path, capsys):
    import argparse

    parser = argparse.ArgumentParser()
    add_genesis_arguments(parser)
    argv = ["--accounts", "4", "--nodes", "1", "--seed", "s", "--n-c", "50"]
    args = parser.parse_args([*argv, "--out", str(tmp_path / "a")])
    assert run_genesis(args) == 1
    err = capsys.readouterr().err
    assert "the committees are not secure" in err and "insecure_committee" in err
    assert not (tmp_path / "a" / "genesis.json").exists()
    args = parser.parse_args([*argv, "--out", str(tmp_path / "b"), "--adversary", "1/3"])
    assert run_genesis(args) == 1
    args = parser.parse_args([*argv, "--out", str(tmp_path / "c"), "--insecure-committee"])
    assert run_genesis(args) == 0
    assert "INSECURE" in capsys.readouterr().out
    loaded = Genesis.load(tmp_path / "c")
    assert loaded.params.insecure_committee and loaded.params.f == Fraction(1, 5)
    # the default committee passes, and says so
    args = parser.parse_args([*argv[:-2], "--out", str(tmp_path / "d")])
    assert run_genesis(args) == 0
    assert "secure: every probability is at most 2^-80" in capsys.readouterr().out
