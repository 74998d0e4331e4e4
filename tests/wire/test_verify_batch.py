"""verify_batch gives each signature exactly the answer verify gives it alone."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import _ed25519_model as model
import pytest
from _ed25519_data import Case, valid_cases
from hypothesis import given, settings
from hypothesis import strategies as st

from echorand import _native
from echorand.wire.crypto import verify, verify_batch

L = model.L
SMALL_ORDER_KEY = model.small_order_points()[3]  # a point of order 8
NOT_A_POINT = next(
    y.to_bytes(32, "little")
    for y in itertools.count(2)
    if model.decode(y.to_bytes(32, "little")) is None
)


def _flip(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8 % len(out)] ^= 1 << (bit % 8)
    return bytes(out)


def _s_plus_l(signature: bytes) -> bytes:
    s = int.from_bytes(signature[32:], "little") + L
    return signature[:32] + s.to_bytes(32, "little")


# Ways to break a valid signature; each leaves the key 32 bytes and the signature 64.
CORRUPTIONS: dict[str, Callable[[Case, int], Case]] = {
    "key bit": lambda c, b: replace(c, public_key=_flip(c.public_key, b)),
    "message bit": lambda c, b: replace(c, message=_flip(c.message, b)),
    "R bit": lambda c, b: replace(c, signature=_flip(c.signature, b % 256)),
    "S bit": lambda c, b: replace(c, signature=_flip(c.signature, 256 + b % 250)),
    "S + L": lambda c, b: replace(c, signature=_s_plus_l(c.signature)),
    "small-order key": lambda c, b: replace(c, public_key=SMALL_ORDER_KEY),
    "key not a point": lambda c, b: replace(c, public_key=NOT_A_POINT),
    "R not a point": lambda c, b: replace(c, signature=NOT_A_POINT + c.signature[32:]),
    "zero signature": lambda c, b: replace(c, signature=bytes(64)),
    "empty message": lambda c, b: replace(c, message=b""),
}
KINDS = list(CORRUPTIONS)


def _corrupt(case: Case, kind: str, bit: int = 0) -> Case:
    return replace(CORRUPTIONS[kind](case, bit), name=f"{case.name} ({kind})", expected=False)


BACKENDS = ["portable"] + (["avx512ifma"] if _native.verify_backend() == "avx512ifma" else [])
"""The batch implementations this CPU runs, each forced on every chunk by `_check`."""


def _check(batch: list[Case], threads: int | None = None) -> None:
    """The batch answers equal the single answers, and those the expectations.

    The answers of `verify_batch` as the CPU picks, and of each backend forced
    (so that the portable path, the fallback on CPUs without AVX-512 IFMA,
    stays tested on CPUs with it, and the lanes see batches of any size).
    """
    keys = [c.public_key for c in batch]
    messages = [c.message for c in batch]
    signatures = [c.signature for c in batch]
    singles = [verify(k, m, s) for k, m, s in zip(keys, messages, signatures, strict=True)]
    assert singles == [c.expected for c in batch]
    assert verify_batch(keys, messages, signatures, threads=threads) == singles
    for backend in BACKENDS:
        answers = _native.verify_batch(keys, messages, signatures, threads, backend)
        assert answers == singles, backend


def test_every_corruption_is_caught_alone() -> None:
    case = valid_cases(1)[0]
    for kind in KINDS:
        bad = _corrupt(case, kind, 5)
        assert not verify(bad.public_key, bad.message, bad.signature), kind


def test_empty_batch() -> None:
    assert verify_batch([], [], []) == []
    assert verify_batch((), (), (), threads=1) == []


@pytest.mark.parametrize("threads", [1, 2, 3, None])
@pytest.mark.parametrize("size", [1, 63, 64, 65, 257, 1100])
def test_valid_batches_pass(size: int, threads: int | None) -> None:
    _check(list(valid_cases(size)), threads)


@pytest.mark.parametrize("n", range(1, 9))
def test_every_pattern_of_invalid_signatures(n: int) -> None:
    """All 2^n choices of which signatures of a small batch are invalid."""
    valid = valid_cases(n)
    for mask in range(1 << n):
        batch = [
            _corrupt(c, KINDS[(i + mask) % len(KINDS)], mask) if mask >> i & 1 else c
            for i, c in enumerate(valid)
        ]
        _check(batch)


PATTERNS = {
    "first": [0],
    "last": [-1],
    "chunk edges": [199, 200, 399, 400],
    "one per chunk": [10, 250, 500],
    "every other": list(range(0, 600, 2)),
    "first half": list(range(300)),
    "all": list(range(600)),
}


@pytest.mark.parametrize("threads", [1, None])
@pytest.mark.parametrize("pattern", PATTERNS)
def test_invalid_patterns_in_a_batch_of_several_chunks(pattern: str, threads: int | None) -> None:
    batch = list(valid_cases(600))
    for j, i in enumerate(PATTERNS[pattern]):
        batch[i] = _corrupt(batch[i], KINDS[j % len(KINDS)], j)
    _check(batch, threads)


def test_the_same_signature_many_times() -> None:
    """Repeated keys are coalesced inside a batch; answers stay per signature."""
    good = valid_cases(1)[0]
    bad = _corrupt(good, "S bit", 3)
    _check([good] * 40 + [bad] + [good] * 40 + [bad])


@settings(max_examples=80, deadline=None)
@given(
    plan=st.lists(
        st.one_of(
            st.none(), st.none(), st.none(), st.tuples(st.sampled_from(KINDS), st.integers(0, 511))
        ),
        min_size=1,
        max_size=96,
    ),
    threads=st.sampled_from([1, 2, None]),
)
def test_batch_equals_single_under_random_corruption(
    plan: list[tuple[str, int] | None], threads: int | None
) -> None:
    valid = valid_cases(len(plan))
    batch = [c if p is None else _corrupt(c, *p) for c, p in zip(valid, plan, strict=True)]
    _check(batch, threads)


@settings(max_examples=10, deadline=None)
@given(
    bad=st.lists(st.tuples(st.integers(0, 699), st.sampled_from(KINDS)), max_size=40),
    threads=st.sampled_from([1, None]),
)
def test_batch_equals_single_in_large_batches(
    bad: list[tuple[int, str]], threads: int | None
) -> None:
    batch = list(valid_cases(700))
    for i, kind in bad:
        batch[i] = _corrupt(valid_cases(700)[i], kind, i)
    _check(batch, threads)


def test_concurrent_callers_get_their_own_answers() -> None:
    """The GIL is released; calls from several Python threads must not mix up."""
    valid = list(valid_cases(300))

    def job(k: int) -> None:
        batch = [_corrupt(c, "S bit", i) if i % 7 == k else c for i, c in enumerate(valid)]
        _check(batch, threads=[1, 2, None][k % 3])

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(job, range(7)))


class TestArguments:
    def test_sequences_of_different_lengths(self) -> None:
        c = valid_cases(1)[0]
        with pytest.raises(ValueError, match="same length, got 2, 3 and 1"):
            verify_batch([c.public_key] * 2, [c.message] * 3, [c.signature])

    @pytest.mark.parametrize("size", [0, 31, 33])
    def test_a_key_of_wrong_length_is_named(self, size: int) -> None:
        c = valid_cases(1)[0]
        with pytest.raises(ValueError, match=rf"public_keys\[2\] must be 32 bytes, got {size}"):
            verify_batch([c.public_key] * 2 + [bytes(size)], [c.message] * 3, [c.signature] * 3)

    def test_a_signature_of_wrong_length_is_named(self) -> None:
        c = valid_cases(1)[0]
        with pytest.raises(ValueError, match=r"signatures\[0\] must be 64 bytes, got 65"):
            verify_batch([c.public_key], [c.message], [c.signature + b"\x00"])

    def test_an_item_that_is_not_bytes_is_named(self) -> None:
        c = valid_cases(1)[0]
        with pytest.raises(TypeError, match=r"messages\[1\] must be bytes-like, not int"):
            verify_batch([c.public_key] * 2, [c.message, 7], [c.signature] * 2)

    def test_a_bytes_object_is_not_a_sequence_of_keys(self) -> None:
        c = valid_cases(1)[0]
        with pytest.raises(TypeError, match="public_keys must be a sequence of bytes"):
            verify_batch(c.public_key, [c.message], [c.signature])

    def test_an_unknown_backend_is_named(self) -> None:
        c = valid_cases(1)[0]
        with pytest.raises(ValueError, match="backend must be 'portable' or 'avx512ifma'"):
            _native.verify_batch([c.public_key], [c.message], [c.signature], None, "fast")

    def test_not_iterable(self) -> None:
        with pytest.raises(TypeError, match="signatures must be a sequence"):
            verify_batch([], [], None)  # type: ignore[arg-type]

    @pytest.mark.parametrize("threads", [0, -1, 1025])
    def test_threads_out_of_range(self, threads: int) -> None:
        with pytest.raises(ValueError, match=f"threads must be between 1 and 1024, got {threads}"):
            verify_batch([], [], [], threads=threads)

    def test_any_iterable_of_bytes_is_accepted(self) -> None:
        cases = valid_cases(3)
        assert (
            verify_batch(
                (c.public_key for c in cases),
                tuple(c.message for c in cases),
                [c.signature for c in cases],
            )
            == [True] * 3
        )
