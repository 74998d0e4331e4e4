"""The edge-case vector files of tests/data/ed25519 under ZIP 215, alone and in batches.

What ZIP 215 says of each file (shared spec, ed25519-vectors/README.md):
speccheck gives VVVVVVXXXVVV; Wycheproof's `result` holds for 150 of 151
tests, tcId 151 (R = y 1 with the sign bit of x set) being accepted; every
CCTV case is accepted (see `cctv_zip215_expectation`). Each case must give
the same answer in any batch as alone.
"""

from __future__ import annotations

import json
import random

import _ed25519_model as model
import pytest
from _ed25519_data import (
    DATA,
    SPECCHECK_EXPECTED,
    Case,
    cctv,
    cctv_zip215_expectation,
    speccheck,
    valid_cases,
    well_formed,
    wycheproof,
)
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from echorand import _native
from echorand.wire.crypto import verify, verify_batch

SUITES = {"speccheck": speccheck, "wycheproof": wycheproof, "cctv": cctv}


BACKENDS = ["portable"] + (["avx512ifma"] if _native.verify_backend() == "avx512ifma" else [])


def _answers(cases: list[Case], threads: int | None = None) -> list[bool]:
    """verify_batch's answers, after checking that each backend forced gives the same."""
    columns = (
        [c.public_key for c in cases],
        [c.message for c in cases],
        [c.signature for c in cases],
    )
    answers = verify_batch(*columns, threads=threads)
    for backend in BACKENDS:
        assert _native.verify_batch(*columns, threads, backend) == answers, backend
    return answers


@pytest.mark.parametrize("suite", SUITES)
def test_single_verification_gives_the_zip215_answer(suite: str) -> None:
    wrong = [
        c.name
        for c in well_formed(SUITES[suite]())
        if verify(c.public_key, c.message, c.signature) != c.expected
    ]
    assert wrong == []


@pytest.mark.parametrize("suite", SUITES)
def test_the_slow_model_gives_the_same_answers(suite: str) -> None:
    """The expectations hold for an independent ZIP 215 written from the definitions."""
    wrong = [
        c.name
        for c in well_formed(SUITES[suite]())
        if model.verify_zip215(c.public_key, c.message, c.signature) != c.expected
    ]
    assert wrong == []


def test_speccheck_gives_vvvvvvxxxvvv() -> None:
    answers = [verify(c.public_key, c.message, c.signature) for c in speccheck()]
    assert "".join("V" if a else "X" for a in answers) == SPECCHECK_EXPECTED == "VVVVVVXXXVVV"


def test_wycheproof_agrees_on_150_of_151_and_tcid_151_is_accepted() -> None:
    agree, disagree = 0, []
    for group in _wycheproof_raw()["testGroups"]:
        key = bytes.fromhex(group["publicKey"]["pk"])
        for test in group["tests"]:
            msg, sig = bytes.fromhex(test["msg"]), bytes.fromhex(test["sig"])
            try:
                accepted = verify(key, msg, sig)
            except ValueError:
                accepted = False  # a signature that is not 64 bytes
            if accepted == (test["result"] == "valid"):
                agree += 1
            else:
                disagree.append((test["tcId"], accepted))
    assert agree == 150
    assert disagree == [(151, True)]


def _wycheproof_raw() -> dict:
    with open(DATA / "wycheproof-ed25519_test.json", encoding="utf-8") as f:
        return json.load(f)


def test_wycheproof_signatures_of_wrong_length_raise() -> None:
    odd = [c for c in wycheproof() if len(c.signature) != 64]
    assert len(odd) == 12 and not any(c.expected for c in odd)
    for c in odd:
        with pytest.raises(ValueError, match=f"signature must be 64 bytes, got {len(c.signature)}"):
            verify(c.public_key, c.message, c.signature)
        with pytest.raises(ValueError, match=r"signatures\[1\] must be 64 bytes"):
            v = valid_cases(1)[0]
            verify_batch([v.public_key] * 2, [v.message, c.message], [v.signature, c.signature])


def test_every_cctv_case_is_accepted() -> None:
    cases = cctv()
    assert len(cases) == 768 and all(c.expected for c in cases)
    assert all(_answers(cases))


def test_cctv_flag_rule() -> None:
    assert cctv_zip215_expectation(set())
    assert cctv_zip215_expectation({"LowOrderA", "NonCanonicalR", "LowOrderResidue"})
    assert not cctv_zip215_expectation({"NonCanonicalA", "ReencodedK"})
    with pytest.raises(ValueError, match="unknown CCTV flags"):
        cctv_zip215_expectation({"SomethingNew"})


def test_pynacl_disagrees_with_zip215_on_edge_cases() -> None:
    """Why consensus never verifies with PyNaCl: libsodium rejects cases ZIP 215 accepts."""
    rejected = []
    for c in well_formed(cctv() + speccheck()):
        try:
            VerifyKey(c.public_key).verify(c.message, c.signature)
        except (BadSignatureError, ValueError):
            if c.expected:
                rejected.append(c.name)
    assert rejected


@pytest.mark.parametrize("threads", [1, None])
@pytest.mark.parametrize("suite", SUITES)
def test_each_case_alone_in_a_batch(suite: str, threads: int | None) -> None:
    cases = well_formed(SUITES[suite]())
    wrong = [c.name for c in cases if _answers([c], threads) != [c.expected]]
    assert wrong == []


@pytest.mark.parametrize("suite", ["speccheck", "wycheproof"])
@pytest.mark.parametrize("position", ["first", "last"])
def test_each_case_first_or_last_among_63_valid_signatures(suite: str, position: str) -> None:
    valid = list(valid_cases(63))
    wrong = []
    for c in well_formed(SUITES[suite]()):
        batch = [c, *valid] if position == "first" else [*valid, c]
        answers = _answers(batch)
        at = 0 if position == "first" else 63
        if answers[at] != c.expected or sum(answers) != 63 + c.expected:
            wrong.append(c.name)
    assert wrong == []


@pytest.mark.parametrize("threads", [1, None])
@pytest.mark.parametrize("size", [2, 5, 64, 300, 1100])
@pytest.mark.parametrize("suite", SUITES)
def test_cases_scattered_among_valid_signatures(suite: str, size: int, threads: int | None) -> None:
    """Cases at random positions among valid signatures; 300 and 1100 run on several threads.

    Each batch holds up to size // 8 cases (at least one), the rest valid
    signatures; every answer must be the case's own.
    """
    rng = random.Random(f"{suite}-{size}")
    cases = well_formed(SUITES[suite]())
    per_batch = max(1, size // 8)
    valid = valid_cases(size)
    for start in range(0, len(cases), per_batch):
        group = cases[start : start + per_batch]
        batch = list(group) + list(valid[: size - len(group)])
        rng.shuffle(batch)
        answers = _answers(batch, threads)
        wrong = [c.name for c, a in zip(batch, answers, strict=True) if a != c.expected]
        assert wrong == [], f"batch of {size} from case {start}"


@pytest.mark.parametrize("suite", SUITES)
def test_each_case_at_every_offset_of_batches_of_1_to_17(suite: str) -> None:
    """Lane tails: case after case at each offset of batches of 1 to 17.

    Each batch is one chunk (`threads=1`); from 3 signatures on it takes the
    AVX-512 IFMA lanes where the CPU has them, 8 signatures per vector, so
    these put every case in every lane and in every partly filled vector.
    """
    cases = well_formed(SUITES[suite]())
    valid = valid_cases(17)
    places = [(size, offset) for size in range(1, 18) for offset in range(size)]
    wrong = []
    for i in range(max(len(cases), len(places))):
        case = cases[i % len(cases)]
        size, offset = places[i % len(places)]
        batch = list(valid[: size - 1])
        batch.insert(offset, case)
        answers = _answers(batch, threads=1)
        if answers != [c.expected for c in batch]:
            wrong.append((case.name, size, offset))
    assert wrong == []


@pytest.mark.parametrize("suite", SUITES)
def test_the_cases_alone_in_batches_of_1_to_17(suite: str) -> None:
    """The suite cut into consecutive batches of 1, 2, ..., 17, 1, 2, ... cases, no filler."""
    cases = well_formed(SUITES[suite]())
    wrong, start, size = [], 0, 1
    while start < len(cases):
        batch = cases[start : start + size]
        answers = _answers(batch, threads=1)
        wrong += [c.name for c, a in zip(batch, answers, strict=True) if a != c.expected]
        start, size = start + size, size % 17 + 1
    assert wrong == []
