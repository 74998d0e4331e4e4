"""Ed25519 verification under pytest-benchmark: ours (ZIP 215) against PyNaCl and OpenSSL; the VRF.

Run with `pytest bench/test_bench_verify.py` (bench/ is not collected by
default). Compare each `verify_batch` group with its PyNaCl and OpenSSL
(`cryptography`) rows: the same signatures, verified one by one. The group
"one operation" puts PyNaCl signing and the VRF's prove and verify beside
our Ed25519 verify.
"""

from __future__ import annotations

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from echorand.tools.benchmarks.verify import Proofs, Signatures, openssl_verifier, pynacl_verify_all
from echorand.wire import vrf
from echorand.wire.crypto import verify, verify_batch

SIZES = [1, 64, 1024]


@pytest.fixture(scope="module")
def signatures() -> Signatures:
    return Signatures(max(SIZES), message_size=100, seed=1)


def test_verify_one(benchmark: BenchmarkFixture, signatures: Signatures) -> None:
    benchmark.group = "one signature"
    args = (signatures.public_keys[0], signatures.messages[0], signatures.signatures[0])
    assert benchmark(verify, *args)


def test_pynacl_verify_one(benchmark: BenchmarkFixture, signatures: Signatures) -> None:
    benchmark.group = "one signature"
    key = signatures.verify_keys[0]
    benchmark(key.verify, signatures.messages[0], signatures.signatures[0])


def test_verify_batch_one(benchmark: BenchmarkFixture, signatures: Signatures) -> None:
    benchmark.group = "one signature"
    args = ([signatures.public_keys[0]], [signatures.messages[0]], [signatures.signatures[0]])
    assert benchmark(verify_batch, *args, threads=1) == [True]


def test_openssl_verify_one(benchmark: BenchmarkFixture, signatures: Signatures) -> None:
    benchmark.group = "one signature"
    check = openssl_verifier(signatures.public_keys[0])
    assert check is not None, "cryptography is one of the test extras"
    assert benchmark(check, signatures.messages[0], signatures.signatures[0])


def _openssl_verify_all(checks: list, msgs: list[bytes], sigs: list[bytes]) -> int:
    return sum(check(m, s) for check, m, s in zip(checks, msgs, sigs, strict=True))


@pytest.mark.parametrize("size", SIZES[1:])
def test_openssl_one_by_one(benchmark: BenchmarkFixture, signatures: Signatures, size: int) -> None:
    benchmark.group = f"batch of {size}"
    checks = [openssl_verifier(k) for k in signatures.public_keys[:size]]
    args = (checks, signatures.messages[:size], signatures.signatures[:size])
    assert benchmark(_openssl_verify_all, *args) == size


@pytest.mark.parametrize("threads", [1, None], ids=["1 thread", "all cores"])
@pytest.mark.parametrize("size", SIZES[1:])
def test_verify_batch(
    benchmark: BenchmarkFixture, signatures: Signatures, size: int, threads: int | None
) -> None:
    benchmark.group = f"batch of {size}"
    keys, msgs, sigs = (
        signatures.public_keys[:size],
        signatures.messages[:size],
        signatures.signatures[:size],
    )
    assert benchmark(verify_batch, keys, msgs, sigs, threads=threads) == [True] * size


@pytest.mark.parametrize("size", SIZES[1:])
def test_pynacl_one_by_one(benchmark: BenchmarkFixture, signatures: Signatures, size: int) -> None:
    benchmark.group = f"batch of {size}"
    args = (
        signatures.verify_keys[:size],
        signatures.messages[:size],
        signatures.signatures[:size],
    )
    assert benchmark(pynacl_verify_all, *args) == size


@pytest.fixture(scope="module")
def proofs(signatures: Signatures) -> Proofs:
    return Proofs(signatures, seed=1)


def test_ed25519_verify_beside_the_vrf(benchmark: BenchmarkFixture, signatures: Signatures) -> None:
    benchmark.group = "one operation"
    args = (signatures.public_keys[0], signatures.messages[0], signatures.signatures[0])
    assert benchmark(verify, *args)


def test_pynacl_sign(benchmark: BenchmarkFixture, signatures: Signatures) -> None:
    benchmark.group = "one operation"
    key = signatures.keypairs[0]
    assert benchmark(key.sign, signatures.messages[0]) == signatures.signatures[0]


def test_vrf_prove(benchmark: BenchmarkFixture, signatures: Signatures, proofs: Proofs) -> None:
    benchmark.group = "one operation"
    seed, alpha = signatures.keypairs[0].seed, proofs.alphas[0]
    assert benchmark(vrf.prove, seed, alpha) == proofs.proofs[0]


def test_vrf_verify(benchmark: BenchmarkFixture, proofs: Proofs) -> None:
    benchmark.group = "one operation"
    args = (proofs.public_keys[0], proofs.alphas[0], proofs.proofs[0])
    assert benchmark(vrf.verify, *args) is not None


@pytest.mark.parametrize("threads", [1, None], ids=["1 thread", "all cores"])
@pytest.mark.parametrize("size", SIZES[1:])
def test_vrf_verify_batch(
    benchmark: BenchmarkFixture, proofs: Proofs, size: int, threads: int | None
) -> None:
    benchmark.group = f"VRF batch of {size}"
    batch = (proofs.public_keys[:size], proofs.alphas[:size], proofs.proofs[:size])
    assert None not in benchmark(vrf.verify_batch, *batch, threads=threads)
