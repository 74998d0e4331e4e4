"""ECVRF-EDWARDS25519-SHA512-ELL2 (echorand.wire.vrf): RFC 9381's vectors, refusals, batches,
a twin.

The expectations come from RFC 9381 Appendix B.4 (tests/data/vrf) and from
the pure-Python model `_ecvrf_model`, written from the RFCs, never from
the native code under test.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

import _ecvrf_model as model
import pytest
from _ed25519_model import L, P, small_order_points

from echorand.wire import vrf
from echorand.wire.crypto import Keypair

VECTORS = Path(__file__).parents[1] / "data" / "vrf" / "rfc9381-ecvrf-edwards25519-sha512-ell2.json"


@dataclass(frozen=True, slots=True)
class Vector:
    name: str
    sk: bytes
    pk: bytes
    alpha: bytes
    pi: bytes
    beta: bytes


def _vectors() -> list[Vector]:
    data = json.loads(VECTORS.read_text())
    assert data["suite_string"] == f"{vrf.SUITE_STRING:02x}"
    fields = ("sk", "pk", "alpha", "pi", "beta")
    return [Vector(v["name"], *(bytes.fromhex(v[f]) for f in fields)) for v in data["vectors"]]


def _flip(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


@pytest.mark.parametrize("v", _vectors(), ids=lambda v: v.name)
def test_rfc9381_vectors_give_the_proof_and_output_exactly(v: Vector) -> None:
    assert Keypair.from_seed(v.sk).public_key == v.pk
    assert vrf.prove(v.sk, v.alpha) == v.pi
    assert vrf.verify(v.pk, v.alpha, v.pi) == v.beta
    assert vrf.proof_to_hash(v.pi) == v.beta
    assert vrf.verify_batch([v.pk], [v.alpha], [v.pi]) == [v.beta]


@pytest.mark.parametrize("v", _vectors(), ids=lambda v: v.name)
def test_the_slow_model_gives_the_rfc9381_vectors(v: Vector) -> None:
    """The model is right before it is used to judge the native code."""
    assert model.expand(v.sk)[2] == v.pk
    assert model.prove(v.sk, v.alpha) == v.pi
    assert model.verify(v.pk, v.alpha, v.pi) == v.beta


def test_sizes_and_suite() -> None:
    assert (vrf.PROOF_SIZE, vrf.OUTPUT_SIZE, vrf.SUITE_STRING) == (80, 64, 4)


def test_a_keypair_proves_and_anyone_verifies_with_its_public_key() -> None:
    key = Keypair.from_seed(bytes(range(32)))
    proof = vrf.prove(key.seed, b"echorand/seed")
    assert vrf.prove(bytearray(key.seed), memoryview(b"echorand/seed")) == proof
    assert vrf.verify(key.public_key, b"echorand/seed", proof) == vrf.proof_to_hash(proof)
    other = Keypair.from_seed(bytes(32))
    assert vrf.verify(other.public_key, b"echorand/seed", proof) is None
    assert vrf.verify(key.public_key, b"echorand/seed!", proof) is None


def test_every_single_bit_flip_of_a_proof_is_refused() -> None:
    v = _vectors()[1]
    refused = [vrf.verify(v.pk, v.alpha, _flip(v.pi, bit)) is None for bit in range(8 * 80)]
    assert all(refused)


def test_every_single_bit_flip_of_the_key_is_refused() -> None:
    v = _vectors()[2]
    refused = [vrf.verify(_flip(v.pk, bit), v.alpha, v.pi) is None for bit in range(8 * 32)]
    assert all(refused)


def test_s_at_or_above_the_group_order_is_refused_even_when_equal_mod_q() -> None:
    """s + q is the same scalar mod q: a lenient decoder would accept a second spelling."""
    v = _vectors()[0]
    s = int.from_bytes(v.pi[48:], "little")
    respelt = v.pi[:48] + (s + L).to_bytes(32, "little")
    assert vrf.verify(v.pk, v.alpha, respelt) is None
    assert model.verify(v.pk, v.alpha, respelt) is None
    with pytest.raises(ValueError, match="does not decode"):
        vrf.proof_to_hash(respelt)


@pytest.mark.parametrize("key", small_order_points(), ids=lambda k: k.hex()[:8])
def test_small_order_keys_are_refused(key: bytes) -> None:
    """validate_key: for a small-order key, anyone could make proofs, and pick outputs."""
    v = _vectors()[0]
    assert vrf.verify(key, v.alpha, v.pi) is None
    assert vrf.verify_batch([key], [v.alpha], [v.pi]) == [None]


def test_non_canonical_and_undecodable_keys_are_refused() -> None:
    """y >= p and x = 0 with the sign bit: RFC 8032 decoding refuses them (the model agrees)."""
    v = _vectors()[0]
    non_canonical = [
        (P + 1).to_bytes(32, "little"),  # the identity as y = p + 1
        (1 | (1 << 255)).to_bytes(32, "little"),  # the identity with the sign bit
        (P + 4).to_bytes(32, "little"),  # y = 4 + p (y = 4 is on the curve)
        (2).to_bytes(32, "little"),  # y = 2 is not on the curve
    ]
    for key in non_canonical:
        assert vrf.verify(key, v.alpha, v.pi) is None
        assert model.verify(key, v.alpha, v.pi) is None


def test_a_gamma_that_is_not_a_point_does_not_decode() -> None:
    v = _vectors()[0]
    bad = (2).to_bytes(32, "little") + v.pi[32:]
    assert vrf.verify(v.pk, v.alpha, bad) is None
    with pytest.raises(ValueError, match="does not decode"):
        vrf.proof_to_hash(bad)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: vrf.prove(bytes(31), b""), "seed must be 32 bytes, got 31"),
        (lambda: vrf.verify(bytes(33), b"", bytes(80)), "public_key must be 32 bytes, got 33"),
        (lambda: vrf.verify(bytes(32), b"", bytes(79)), "proof must be 80 bytes, got 79"),
        (lambda: vrf.proof_to_hash(bytes(81)), "proof must be 80 bytes, got 81"),
        (
            lambda: vrf.verify_batch([bytes(32)] * 2, [b""] * 2, [bytes(80), bytes(8)]),
            r"proofs\[1\] must be 80 bytes, got 8",
        ),
        (
            lambda: vrf.verify_batch([bytes(32), bytes(3)], [b""] * 2, [bytes(80)] * 2),
            r"public_keys\[1\] must be 32 bytes, got 3",
        ),
        (
            lambda: vrf.verify_batch([bytes(32)], [b"", b""], [bytes(80)]),
            "must have the same length, got 1, 2 and 1",
        ),
        (lambda: vrf.verify_batch([], [], [], threads=0), "threads must be between"),
    ],
)
def test_wrong_lengths_raise_value_error_naming_the_argument(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


def test_non_bytes_arguments_raise_type_error() -> None:
    with pytest.raises(TypeError, match="alpha must be bytes-like"):
        vrf.prove(bytes(32), "text")  # type: ignore[arg-type]


# --- batches and the twin ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Case:
    public_key: bytes
    alpha: bytes
    proof: bytes


def _cases(n: int, seed: int) -> list[Case]:
    """n valid proofs by distinct keys over random alphas (0 to 100 bytes)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        sk, alpha = rng.randbytes(32), rng.randbytes(rng.randrange(101))
        out.append(Case(Keypair.from_seed(sk).public_key, alpha, vrf.prove(sk, alpha)))
    return out


def _fields(c: Case) -> tuple[bytes, bytes, bytes]:
    return c.public_key, c.alpha, c.proof


def _corrupt(cases: list[Case], seed: int) -> list[Case]:
    """About half the cases made invalid, in every way a verifier must notice."""
    rng = random.Random(seed)
    smalls = small_order_points()
    out = []
    for i, c in enumerate(cases):
        match rng.randrange(9):
            case 0:
                out.append(Case(c.public_key, c.alpha, _flip(c.proof, rng.randrange(256))))
            case 1:
                out.append(Case(c.public_key, c.alpha, _flip(c.proof, 256 + rng.randrange(128))))
            case 2:
                out.append(Case(c.public_key, c.alpha, _flip(c.proof, 384 + rng.randrange(256))))
            case 3:
                out.append(Case(c.public_key, c.alpha + b"!", c.proof))
            case 4:
                out.append(Case(cases[i - 1].public_key, c.alpha, c.proof))
            case 5:
                out.append(Case(rng.choice(smalls), c.alpha, c.proof))
            case _:
                out.append(c)
    return out


@pytest.mark.parametrize("threads", [1, 2, None])
@pytest.mark.parametrize("n", [0, 1, 7, 65, 150])
def test_batch_equals_single_on_random_and_corrupted_inputs(n: int, threads: int | None) -> None:
    cases = _corrupt(_cases(n, seed=n), seed=n + 1)
    keys, alphas, proofs = ([getattr(c, f) for c in cases] for f in Case.__slots__)
    single = [vrf.verify(*fields) for fields in zip(keys, alphas, proofs, strict=True)]
    assert vrf.verify_batch(keys, alphas, proofs, threads=threads) == single
    valid = [c.proof for c in cases if vrf.verify(c.public_key, c.alpha, c.proof)]
    assert len(valid) < n or n <= 1  # the corruption did make some invalid


def test_batch_answers_are_the_outputs_of_the_proofs() -> None:
    cases = _cases(20, seed=5)
    outputs = vrf.verify_batch(
        [c.public_key for c in cases], [c.alpha for c in cases], [c.proof for c in cases]
    )
    assert outputs == [vrf.proof_to_hash(c.proof) for c in cases]
    assert len(set(outputs)) == 20


def test_the_slow_model_agrees_with_native_verify_on_hundreds_of_cases() -> None:
    """120 valid proofs and their corrupted twins: the same output or None from both."""
    valid = _cases(120, seed=11)
    corrupted = _corrupt(valid, seed=12)
    disagreements = [
        (i, c)
        for i, c in enumerate(valid + corrupted)
        if model.verify(*_fields(c)) != vrf.verify(*_fields(c))
    ]
    assert disagreements == []
    assert sum(vrf.verify(c.public_key, c.alpha, c.proof) is None for c in corrupted) > 30


def test_the_slow_model_makes_the_same_proofs() -> None:
    rng = random.Random(13)
    for _ in range(25):
        sk, alpha = rng.randbytes(32), rng.randbytes(rng.randrange(60))
        assert model.prove(sk, alpha) == vrf.prove(sk, alpha)
