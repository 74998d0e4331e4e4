"""The ledger's stake snapshots (`StakeHistory`): every kept table and delegate against a
slow model, through blocks pushed, rolled back (`pop`) and recalled on reopening."""

from __future__ import annotations

import hashlib
import random

import pytest
from _ledger_model import Model
from _sortition_model import model_committee, model_weights

from echorand._native import AccountState, StakeHistory
from echorand.protocol.sortition import StakeTable
from echorand.wire.crypto import Keypair
from echorand.wire.transactions import delegation, transfer

CHAIN = bytes(32)
KEYPAIRS = [Keypair.from_seed(hashlib.sha256(b"history %d" % i).digest()) for i in range(30)]
GENESIS_ACCOUNTS = 10


class Chain:
    """A state, its model, and the model and undo record of every block."""

    def __init__(self, rng: random.Random, keep: int) -> None:
        self.rng = rng
        genesis = [(kp.public_key, rng.choice([0, 5, 40, 1000])) for kp in KEYPAIRS[:10]]
        genesis[0] = (genesis[0][0], 500)
        self.model = Model(genesis)
        self.state = AccountState(b"".join(k + b.to_bytes(8, "big") for k, b in genesis))
        self.history = StakeHistory(self.state.balances(), 0, keep=keep)
        self.models = [self.model.copy()]
        """The model after each block (index = block)."""
        self.undos: list[bytes] = []

    def random_txs(self) -> list:
        txs = []
        scratch = self.model.copy()
        for _ in range(self.rng.randrange(6)):
            kp = self.rng.choice(KEYPAIRS)
            sender = scratch.index.get(kp.public_key)
            if sender is None:
                continue
            a = scratch.accounts[sender]
            to = self.rng.choice(KEYPAIRS).public_key
            if self.rng.random() < 0.3:
                tx = delegation(kp, to, fee=1, nonce=a.nonce, chain=CHAIN)
            else:
                amount = self.rng.randint(1, max(1, a.balance // 2))
                tx = transfer(kp, to, amount, fee=1, nonce=a.nonce, chain=CHAIN)
            if scratch.check([tx]) == [None]:
                scratch.step(tx)
                txs.append(tx)
        return txs

    def push(self) -> None:
        txs = self.random_txs()
        producer = self.rng.randrange(len(self.model.accounts))
        changes = self.state.prepare(txs, producer if txs else None)
        self.state.commit(changes)
        self.history.push(changes)
        self.model.apply(txs, producer)
        self.models.append(self.model.copy())
        self.undos.append(changes.undo)

    def pop(self) -> None:
        self.history.pop(self.undos.pop())
        self.models.pop()
        self.model = self.models[-1].copy()
        self.state = AccountState.from_records(self.model.records())


def check_kept(history: StakeHistory, models: list[Model], tip: Model) -> None:
    """Every table and delegate the history keeps, against the model after that block."""
    for after in range(history.oldest, history.block + 1):
        model = models[after]
        balances = model.balances()
        table = history.table(after)
        assert len(table) == len(balances), after
        assert table.total == sum(balances), after
        assert [table.balance(i) for i in range(len(table))] == balances, after
        with pytest.raises(ValueError, match="unknown account"):
            table.balance(len(balances))
        if sum(balances) > 0:
            seed = hashlib.sha256(b"%d" % after).digest()
            assert table.committee(seed, 7, 2, 40) == model_committee(balances, seed, 7, 2, 40)
            assert table.weights(seed, 7, 3, 25) == model_weights(balances, seed, 7, 3, 25)
            assert table.copy().committee(seed, 7, 1, 9) == table.committee(seed, 7, 1, 9)
        delegates = model.delegates()
        for account in range(len(KEYPAIRS) + 1):
            current = tip.accounts[account].delegate if account < len(tip.accounts) else None
            expected = delegates[account] if account < len(delegates) else None
            assert history.delegate(after, account, current) == expected, (after, account)


@pytest.mark.parametrize("seed", range(6))
def test_every_kept_snapshot_is_the_model(seed: int) -> None:
    rng = random.Random(seed)
    keep = rng.randint(1, 5)
    chain = Chain(rng, keep)
    for _ in range(30):
        if chain.undos and rng.random() < 0.25:
            chain.pop()
        else:
            chain.push()
        assert chain.history.block == len(chain.undos)
        assert chain.history.block - keep <= chain.history.oldest <= chain.history.block
        check_kept(chain.history, chain.models, chain.model)
    # Reopened: the tip's balances, then the undo records of the kept blocks, newest first.
    tip = chain.history.block
    reopened = StakeHistory(chain.state.balances(), tip, keep=keep)
    for undo in reversed(chain.undos[max(0, tip - keep) :]):
        reopened.recall(undo)
    assert reopened.oldest == max(0, tip - keep)
    check_kept(reopened, chain.models, chain.model)


def test_a_table_follows_the_tip_until_its_block_is_no_longer_kept() -> None:
    chain = Chain(random.Random(1), keep=3)
    table = chain.history.table(0)
    balances = chain.models[0].balances()
    for _ in range(3):
        chain.push()
        assert [table.balance(i) for i in range(len(table))] == balances
    chain.push()
    with pytest.raises(ValueError, match="after block 0 are no longer kept"):
        table.committee(bytes(32), 1, 2, 3)
    with pytest.raises(ValueError, match="after block 9 are not known: the tip is block 4"):
        chain.history.table(9)


def test_a_table_of_a_rolled_back_block_is_refused() -> None:
    chain = Chain(random.Random(2), keep=4)
    chain.push()
    table = chain.history.table(1)
    chain.pop()
    chain.push()
    with pytest.raises(ValueError, match="after block 1 of this snapshot were rolled back"):
        len(table)
    assert len(chain.history.table(1)) == len(chain.model.accounts)


def test_a_ledger_table_is_read_only() -> None:
    chain = Chain(random.Random(3), keep=2)
    table = chain.history.table(0)
    for change in (lambda: table.update({0: 1}), lambda: table.append(1)):
        with pytest.raises(TypeError, match="only the ledger changes"):
            change()
    own = table.copy()
    assert isinstance(own, StakeTable)
    own.update({0: 1})
    assert own.balance(0) == 1 != table.balance(0)
    assert "after block 0 of a ledger" in repr(table)


def test_changes_and_undo_records_that_do_not_fit_are_refused() -> None:
    chain = Chain(random.Random(4), keep=2)
    chain.push()
    changes = chain.state.prepare([], None)
    other = Chain(random.Random(4), keep=2)
    with pytest.raises(ValueError, match="accounts before it"):
        StakeHistory([1, 2, 3]).push(changes)
    n = len(chain.state)
    wrong = b"".join(v.to_bytes(8, "big") for v in (n, 0, 123_456_789, 0, 2**64 - 1))
    with pytest.raises(ValueError, match="does not match its changes"):
        chain.history.pop(wrong)
    with pytest.raises(ValueError, match="names accounts the state before it did not have"):
        chain.history.pop((n + 5).to_bytes(8, "big"))
    with pytest.raises(ValueError, match="the genesis cannot be undone"):
        other.history.pop(changes.undo)
    with pytest.raises(ValueError, match="no block before the genesis"):
        chain.history.recall(chain.undos[0])
    assert chain.history.block == 1
