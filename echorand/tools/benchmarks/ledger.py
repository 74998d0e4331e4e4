"""The ledger: transaction rules on a block, the LMDB commit, keys and genesis.

Baselines, measured in the same run:

- check / prepare / commit of a block: the same rules in plain Python (a
  dict from key to id, lists of balances and nonces, a dict overlay),
  reading the same `Transaction` objects;
- deriving public keys: PyNaCl (libsodium), one key per call;
- checking account keys: `echorand.wire.crypto.is_valid_account_key`, one key per
  call from Python.

The ledger rows (apply with its commit, a devnet genesis created, a ledger
made from it and reopened) have no baseline: they show what a node pays.
"""

from __future__ import annotations

import hashlib
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from nacl.signing import SigningKey

from echorand.ledger.genesis import Genesis
from echorand.ledger.ledger import Ledger
from echorand.protocol.seeds import seed_signing_bytes
from echorand.tools.benchmarks import Report, Row, best_time
from echorand.tools.genesis import DEFAULT_BALANCE, create_devnet, devnet_master
from echorand.wire.crypto import Keypair, is_valid_account_key
from echorand.wire.messages import Block, Certificate, Transaction
from echorand.wire.transactions import (
    derive_public_keys,
    devnet_seeds,
    transfer,
    valid_account_keys,
)

SEED = "echorand ledger benchmark"
BALANCE = DEFAULT_BALANCE
NEW_ACCOUNT_SHARE = 10
"""One transaction in this many pays a key that has no account yet."""


class PythonState:
    """The baseline: the account state and its rules in plain Python."""

    def __init__(self, keys: list[bytes], balances: list[int]) -> None:
        self.keys = list(keys)
        self.index = {k: i for i, k in enumerate(keys)}
        self.balances = list(balances)
        self.nonces = [0] * len(keys)
        self.delegates: list[int | None] = [None] * len(keys)

    def _get(self, overlay: dict[int, list], new: list[list], i: int) -> list:
        if i >= len(self.keys):
            return new[i - len(self.keys)]
        acct = overlay.get(i)
        if acct is None:
            acct = overlay[i] = [self.balances[i], self.nonces[i], self.delegates[i]]
        return acct

    def _step(self, tx: Transaction, overlay: dict, new: list, new_index: dict) -> str | None:
        sender = self.index.get(tx.sender)
        if sender is None:
            sender = new_index.get(tx.sender)
            if sender is None:
                return "unknown sender"
        a = self._get(overlay, new, sender)
        nonce = tx.nonce
        if nonce != a[1]:
            return "nonce too low" if nonce < a[1] else "nonce too high"
        amount, fee, recipient = tx.amount, tx.fee, tx.recipient
        if amount == 0:
            return "amount must be at least 1"
        if recipient == tx.sender:
            return "recipient is the sender"
        if a[0] < amount + fee:
            return "insufficient balance"
        to = self.index.get(recipient)
        if to is None:
            to = new_index.get(recipient)
        if to is None:
            if not is_valid_account_key(recipient):
                return "recipient key is small-order or non-canonical"
            to = new_index[recipient] = len(self.keys) + len(new)
            new.append([0, 0, None, recipient])
        a[0] -= amount + fee
        a[1] += 1
        self._get(overlay, new, to)[0] += amount
        return None

    def check(self, txs: Sequence[Transaction]) -> list[str | None]:
        overlay: dict[int, list] = {}
        new: list[list] = []
        new_index: dict[bytes, int] = {}
        return [self._step(tx, overlay, new, new_index) for tx in txs]

    def prepare(self, txs: Sequence[Transaction], producer: int) -> tuple[dict, list]:
        overlay: dict[int, list] = {}
        new: list[list] = []
        new_index: dict[bytes, int] = {}
        fees = 0
        for i, tx in enumerate(txs):
            reason = self._step(tx, overlay, new, new_index)
            if reason is not None:
                raise ValueError(f"transaction {i}: {reason}")
            fees += tx.fee
        self._get(overlay, new, producer)[0] += fees
        return overlay, new

    def commit(self, changes: tuple[dict, list]) -> None:
        overlay, new = changes
        for i, (balance, nonce, delegate) in overlay.items():
            self.balances[i], self.nonces[i], self.delegates[i] = balance, nonce, delegate
        for balance, nonce, delegate, key in new:
            self.index[key] = len(self.keys)
            self.keys.append(key)
            self.balances.append(balance)
            self.nonces.append(nonce)
            self.delegates.append(delegate)


def _keys(accounts: int) -> tuple[bytes, bytes]:
    """The devnet seeds and keys of `SEED` (account i of its genesis has key i)."""
    seeds = devnet_seeds(devnet_master(SEED), accounts)
    return seeds, derive_public_keys(seeds)


def _block_txs(seeds: bytes, keys: bytes, transactions: int, chain: bytes) -> list[Transaction]:
    """`transactions` signed transfers from distinct accounts, some to new keys, for the
    network `chain`."""
    rng = random.Random(1)
    accounts = len(keys) // 32
    senders = rng.sample(range(accounts), transactions)
    fresh = derive_public_keys(devnet_seeds(hashlib.sha256(b"new").digest(), transactions))
    txs = []
    for j, s in enumerate(senders):
        if j % NEW_ACCOUNT_SHARE == 0:
            to = fresh[32 * j : 32 * j + 32]
        else:
            r = (s + 1 + rng.randrange(accounts - 1)) % accounts
            to = keys[32 * r : 32 * r + 32]
        kp = Keypair.from_seed(seeds[32 * s : 32 * s + 32])
        amount, fee = rng.randint(1, 1000), rng.randint(0, 9)
        txs.append(transfer(kp, to, amount, fee=fee, nonce=0, chain=chain))
    return txs


def _best_commit(make: Callable[[], Callable[[], object]], repeat: int) -> float:
    """Best time of a call that can run once per fresh setup (`make` is untimed)."""
    best = float("inf")
    for _ in range(max(repeat, 1)):
        fn = make()
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _rows_rules(report: Report, genesis: Genesis, txs: list[Transaction], repeat: int) -> None:
    accounts = genesis.count
    state = genesis.account_state(check_keys=False)
    keys = genesis.public_keys()
    key_list = [keys[i : i + 32] for i in range(0, len(keys), 32)]
    python = PythonState(key_list, [BALANCE] * accounts)
    existing = [tx for i, tx in enumerate(txs) if i % NEW_ACCOUNT_SHARE]
    for block, what in (
        (txs, f"1 in {NEW_ACCOUNT_SHARE} to a new account"),
        (existing, "between existing accounts"),
    ):
        if state.check(block) != python.check(block):
            raise AssertionError("the native state and the Python baseline disagree")
        n = len(block)
        for op, ours_fn, base_fn in (
            ("check", lambda b=block: state.check(b), lambda b=block: python.check(b)),
            (
                "prepare (apply, no commit)",
                lambda b=block: state.prepare(b, 0),
                lambda b=block: python.prepare(b, 0),
            ),
        ):
            report.add(
                Row(
                    name=f"{op}: {n:,} transfers, {what}, {accounts:,} accounts",
                    seconds=best_time(ours_fn, repeat=repeat),
                    items=n,
                    baseline="the same rules in plain Python",
                    baseline_seconds=best_time(base_fn, repeat=repeat),
                )
            )

    def fresh_native() -> Callable[[], object]:
        s = genesis.account_state(check_keys=False)
        changes = s.prepare(txs, 0)
        return lambda: s.commit(changes)

    def fresh_python() -> Callable[[], object]:
        p = PythonState(key_list, [BALANCE] * accounts)
        changes = p.prepare(txs, 0)
        return lambda: p.commit(changes)

    report.add(
        Row(
            name=f"commit the changes of {len(txs):,} transfers",
            seconds=_best_commit(fresh_native, repeat),
            items=len(txs),
            baseline="list and dict assignments in Python",
            baseline_seconds=_best_commit(fresh_python, repeat),
        )
    )


def _rows_keys(report: Report, seeds: bytes, keys: bytes, count: int, repeat: int) -> None:
    seeds, keys = seeds[: 32 * count], keys[: 32 * count]
    sample = [seeds[i : i + 32] for i in range(0, len(seeds), 32)]
    if bytes(SigningKey(sample[-1]).verify_key) != keys[-32:]:
        raise AssertionError("derive_public_keys and PyNaCl disagree")
    ours = best_time(lambda: derive_public_keys(seeds), repeat=repeat)
    base = best_time(lambda: [SigningKey(s).verify_key for s in sample], repeat=repeat)
    report.add(
        Row(
            name=f"derive {count:,} public keys from seeds",
            seconds=ours,
            items=count,
            baseline="PyNaCl SigningKey(seed).verify_key, one by one",
            baseline_seconds=base,
        )
    )
    pks = [keys[i : i + 32] for i in range(0, len(keys), 32)]
    ours = best_time(lambda: valid_account_keys(keys), repeat=repeat)
    base = best_time(lambda: [is_valid_account_key(k) for k in pks], repeat=repeat)
    report.add(
        Row(
            name=f"check {count:,} account keys (canonical, not small-order)",
            seconds=ours,
            items=count,
            baseline="echorand.wire.crypto.is_valid_account_key, one call per key",
            baseline_seconds=base,
        )
    )


def _certified(ledger: Ledger, producer_seed: bytes, txs: list[Transaction]):
    kp = Keypair.from_seed(producer_seed)
    r, chain = ledger.tip + 1, ledger.genesis.hash
    seed_sig = kp.sign(seed_signing_bytes(chain, ledger.tip_seed, r))
    unsigned = Block(r, ledger.tip_hash, 0, seed_sig, txs, bytes(64))
    block = Block(r, ledger.tip_hash, 0, seed_sig, txs, kp.sign(unsigned.signing_bytes(chain)))
    cert = Certificate(r, 4, 0, block.hash, 0, [])
    body = cert.vote_signing_bytes(chain)
    return block, Certificate(r, 4, 0, block.hash, 0, [(0, kp.sign(body))])


def _rows_genesis(report: Report, root: Path, accounts: int) -> Genesis:
    start = time.perf_counter()
    create_devnet(root / "genesis", accounts=accounts, nodes=4, seed=SEED)
    created = time.perf_counter() - start
    start = time.perf_counter()
    genesis = Genesis.load(root / "genesis")
    loaded = time.perf_counter() - start
    report.add(Row(f"create a {accounts:,}-account devnet genesis", created, accounts))
    report.add(Row("load it (files, digest, hash)", loaded, accounts))
    return genesis


def _rows_ledger(
    report: Report, root: Path, genesis: Genesis, txs: list[Transaction], producer_seed: bytes
) -> None:
    n = genesis.count
    start = time.perf_counter()
    ledger = Ledger.open(root / "ledger", genesis)
    made = time.perf_counter() - start
    block, cert = _certified(ledger, producer_seed, txs)
    start = time.perf_counter()
    ledger.apply(block, cert)
    applied = time.perf_counter() - start
    ledger.close()
    start = time.perf_counter()
    Ledger.open(root / "ledger", genesis).close()
    reopened = time.perf_counter() - start
    report.add(Row("make a ledger of it (keys checked, records written)", made, n))
    report.add(Row(f"ledger.apply a {len(txs):,}-transaction block, fsync'd", applied, len(txs)))
    report.add(Row(f"reopen the ledger ({n:,} accounts, stake tables)", reopened, n))


def run(
    accounts: int = 100_000, transactions: int = 10_000, keys: int = 10_000, repeat: int = 5
) -> Report:
    """Measure the ledger on a devnet of `accounts` accounts and a block of `transactions`."""
    if min(accounts, transactions, keys) < 1:
        raise ValueError("accounts, transactions and keys must be at least 1")
    if transactions > accounts:
        raise ValueError("a block's senders are distinct: transactions <= accounts")
    report = Report(title=f"ledger: a {transactions:,}-transaction block, {accounts:,} accounts")
    root = Path(tempfile.mkdtemp(prefix="echorand-bench-ledger-"))
    try:
        genesis = _rows_genesis(report, root, accounts)
        seeds, pks = _keys(max(accounts, keys))
        if pks[: 32 * accounts] != genesis.public_keys():
            raise AssertionError("the devnet keys are not the benchmark's keys")
        txs = _block_txs(seeds[: 32 * accounts], pks[: 32 * accounts], transactions, genesis.hash)
        _rows_rules(report, genesis, txs, repeat)
        _rows_keys(report, seeds, pks, keys, repeat)
        _rows_ledger(report, root, genesis, txs, seeds[:32])
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return report
