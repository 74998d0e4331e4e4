"""is_valid_account_key: the ledger refuses small-order and non-canonical keys (PROTOCOL §2)."""

from __future__ import annotations

import _ed25519_model as model
import pytest
from _ed25519_data import valid_cases
from hypothesis import given, settings
from hypothesis import strategies as st

from echorand.wire.crypto import Keypair, is_valid_account_key, verify_batch

P = model.P

# The small-order points and their other encodings, as CCTV's ed25519 README lists them.
SMALL_ORDER = {
    "0000000000000000000000000000000000000000000000000000000000000000": [
        "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # y = p
    ],
    "0000000000000000000000000000000000000000000000000000000000000080": [
        "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",  # y = p
    ],
    "0100000000000000000000000000000000000000000000000000000000000000": [
        "0100000000000000000000000000000000000000000000000000000000000080",  # x = -0
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # y = p + 1
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",  # both
    ],
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05": [],
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85": [],
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a": [],
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa": [],
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f": [
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",  # x = -0
    ],
}
CANONICAL = [bytes.fromhex(h) for h in SMALL_ORDER]
NON_CANONICAL = [bytes.fromhex(h) for others in SMALL_ORDER.values() for h in others]


def test_the_list_is_the_eight_small_order_points() -> None:
    assert sorted(CANONICAL) == model.small_order_points()
    assert len(NON_CANONICAL) == 6
    for encoding in NON_CANONICAL:
        point = model.decode(encoding)
        assert point is not None and model.encode(point) in CANONICAL


@pytest.mark.parametrize("key", CANONICAL, ids=lambda k: k.hex()[:8])
def test_small_order_points_are_refused(key: bytes) -> None:
    assert not is_valid_account_key(key)


@pytest.mark.parametrize("key", NON_CANONICAL, ids=lambda k: k.hex()[:8] + ".." + k.hex()[-2:])
def test_other_encodings_of_small_order_points_are_refused(key: bytes) -> None:
    assert not is_valid_account_key(key)


def test_small_order_keys_are_why() -> None:
    """Under a small-order key, R = identity and S = 0 verify for any message: no secret needed."""
    forged = bytes.fromhex("01" + "00" * 31) + bytes(32)  # R = identity, S = 0
    messages = [b"pay me", b"pay me everything"]
    for key in CANONICAL + NON_CANONICAL:
        assert verify_batch([key] * 2, messages, [forged] * 2) == [True, True]


@pytest.mark.parametrize("low", range(19))
@pytest.mark.parametrize("sign", [0, 1])
def test_every_encoding_with_y_at_least_p_is_refused(low: int, sign: int) -> None:
    """y = p + low for low < 19 are all the encodings with y >= p."""
    key = ((P + low) | sign << 255).to_bytes(32, "little")
    assert not is_valid_account_key(key)
    assert not model.is_valid_account_key(key)


def test_x_zero_with_sign_bit_is_refused() -> None:
    for y in (1, P - 1):  # the two points with x = 0
        key = (y | 1 << 255).to_bytes(32, "little")
        assert model.decode(key) is not None
        assert not is_valid_account_key(key)


def test_non_points_are_refused() -> None:
    non_points = [
        y.to_bytes(32, "little")
        for y in range(2, 60)
        if model.decode(y.to_bytes(32, "little")) is None
    ]
    assert len(non_points) > 10
    assert not any(is_valid_account_key(k) for k in non_points)


def test_ordinary_keys_are_accepted() -> None:
    assert all(is_valid_account_key(c.public_key) for c in valid_cases(50))
    assert is_valid_account_key(Keypair.generate().public_key)
    assert is_valid_account_key(bytearray(valid_cases(1)[0].public_key))


def test_keys_with_a_torsion_component_are_accepted() -> None:
    """A + T, T small order, not the identity: only small-order keys are refused (PROTOCOL §2)."""
    identity = bytes.fromhex("01" + "00" * 31)
    torsion = [model.decode(k) for k in CANONICAL if k != identity]
    for case in valid_cases(4):
        a = model.decode(case.public_key)
        assert a is not None
        for t in torsion:
            assert t is not None
            mixed = model.encode(model.add(a, t))
            assert model.is_valid_account_key(mixed)
            assert is_valid_account_key(mixed)


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=32, max_size=32))
def test_agrees_with_the_model_on_any_32_bytes(key: bytes) -> None:
    assert is_valid_account_key(key) == model.is_valid_account_key(key)


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2**255 - 1), st.sampled_from([0, 1]))
def test_agrees_with_the_model_on_small_and_large_y(y: int, sign: int) -> None:
    for value in (y, y % 64, P - 1 - y % 64, P + y % 19):
        key = (value | sign << 255).to_bytes(32, "little")
        assert is_valid_account_key(key) == model.is_valid_account_key(key)


@pytest.mark.parametrize("size", [0, 31, 33, 64])
def test_wrong_length_raises(size: int) -> None:
    with pytest.raises(ValueError, match=f"public_key must be 32 bytes, got {size}"):
        is_valid_account_key(bytes(size))
