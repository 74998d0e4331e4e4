"""pytest-benchmark: the native account state against the same rules in plain Python,
and bulk key derivation against PyNaCl (run with `pytest bench`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from nacl.signing import SigningKey

from echorand.ledger.genesis import Genesis
from echorand.tools.benchmarks.ledger import (
    BALANCE,
    NEW_ACCOUNT_SHARE,
    SEED,
    PythonState,
    _block_txs,
    _keys,
)
from echorand.tools.genesis import create_devnet
from echorand.wire.messages import Transaction
from echorand.wire.transactions import derive_public_keys

ACCOUNTS = 100_000
TRANSACTIONS = 10_000
KEYS = 10_000


@pytest.fixture(scope="module")
def genesis(tmp_path_factory: pytest.TempPathFactory) -> Genesis:
    path: Path = tmp_path_factory.mktemp("genesis")
    return create_devnet(path, accounts=ACCOUNTS, nodes=1, seed=SEED)


@pytest.fixture(scope="module")
def keys() -> tuple[bytes, bytes]:
    return _keys(ACCOUNTS)


@pytest.fixture(scope="module")
def block(keys: tuple[bytes, bytes], genesis: Genesis) -> list[Transaction]:
    return _block_txs(*keys, TRANSACTIONS, genesis.hash)


@pytest.fixture(scope="module")
def python_state(genesis: Genesis) -> PythonState:
    pks = genesis.public_keys()
    return PythonState([pks[i : i + 32] for i in range(0, len(pks), 32)], [BALANCE] * ACCOUNTS)


@pytest.mark.benchmark(group="ledger check")
def test_check(benchmark, genesis, block) -> None:
    state = genesis.account_state(check_keys=False)
    reasons = benchmark(state.check, block)
    assert reasons == [None] * TRANSACTIONS


@pytest.mark.benchmark(group="ledger check")
def test_check_baseline_python(benchmark, python_state, block) -> None:
    assert benchmark(python_state.check, block) == [None] * TRANSACTIONS


@pytest.mark.benchmark(group="ledger prepare")
def test_prepare(benchmark, genesis, block) -> None:
    state = genesis.account_state(check_keys=False)
    changes = benchmark(state.prepare, block, 0)
    assert changes.accounts_after - changes.accounts_before == TRANSACTIONS // NEW_ACCOUNT_SHARE


@pytest.mark.benchmark(group="ledger prepare")
def test_prepare_baseline_python(benchmark, python_state, block) -> None:
    _, new = benchmark(python_state.prepare, block, 0)
    assert len(new) == TRANSACTIONS // NEW_ACCOUNT_SHARE


@pytest.mark.benchmark(group="ledger keys")
def test_derive_public_keys(benchmark, keys) -> None:
    seeds, pks = keys
    assert benchmark(derive_public_keys, seeds[: 32 * KEYS]) == pks[: 32 * KEYS]


@pytest.mark.benchmark(group="ledger keys")
def test_derive_public_keys_baseline_pynacl(benchmark, keys) -> None:
    seeds = [keys[0][i : i + 32] for i in range(0, 32 * KEYS, 32)]
    out = benchmark(lambda: b"".join(bytes(SigningKey(s).verify_key) for s in seeds))
    assert out == keys[1][: 32 * KEYS]
