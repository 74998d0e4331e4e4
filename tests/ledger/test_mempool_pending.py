"""The mempool's pending state: admission in O(batch) against each sender's queued transactions.

`PendingState` keeps each sender's account after its queued transactions;
checked against a reference that re-checks every sender's queue per batch
with `AccountState.check` (the former approach, sender by sender).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict

import pytest
from _ledger_model import genesis_entries
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from echorand._native import PendingState
from echorand.ledger.mempool import Mempool
from echorand.tools.benchmarks.mempool_model import PyMempool
from echorand.wire import transactions as T
from echorand.wire.crypto import Keypair
from echorand.wire.messages import Transaction
from echorand.wire.transactions import AccountState, delegation, transfer

CHAIN = bytes(range(32))
"""The genesis hash transactions here are signed for (PROTOCOL §2)."""

KEYPAIRS = [Keypair.from_seed(hashlib.sha256(b"pending %d" % i).digest()) for i in range(7)]
KEYS = [kp.public_key for kp in KEYPAIRS]
FUNDED = 5
"""KEYPAIRS[:FUNDED] have accounts at genesis; the others only once a block pays them."""


def genesis(balance: int = 100) -> AccountState:
    return AccountState(genesis_entries(KEYS[:FUNDED], [balance] * FUNDED))


def pay(sender: int, amount: int = 10, *, fee: int = 1, nonce: int = 0, to: int = 4):
    return transfer(KEYPAIRS[sender], KEYS[to], amount, fee=fee, nonce=nonce, chain=CHAIN)


class SenderBySender(PyMempool):
    """The reference: the Python model (tests/ledger/test_mempool_native.py), each batch
    sender's queue re-checked with `AccountState.check`."""

    def _check(self, batch: list[Transaction]) -> list[str | None]:
        out: list[str | None] = [None] * len(batch)
        by_sender: dict[bytes, list[int]] = defaultdict(list)
        for i, tx in enumerate(batch):
            by_sender[tx.sender].append(i)
        for sender, indices in by_sender.items():
            queued = self.pending(sender)
            checked = self._state.check([batch[i] for i in indices], queued)
            for i, reason in zip(indices, checked, strict=True):
                out[i] = reason
        return out

    def _redo(self, senders: set[bytes]) -> None:
        pass


class EagerTails(SenderBySender):
    """The reference's eviction order kept at every admission (the former bookkeeping):
    the heap of chain ends exists from the start, whatever the pool's room."""

    def _push_tail(self, entry) -> None:
        if self._tails is None:
            self._rebuild_tails()
        super()._push_tail(entry)


# --- the rule ---------------------------------------------------------------------------


def test_a_credit_from_a_queued_transaction_does_not_count():
    pool = Mempool(genesis(), genesis_hash=CHAIN)
    assert pool.add([pay(0, 90, to=1)]) == [None]
    # Account 1 has 100 in the state; the queued 90 is not counted.
    assert pool.add([pay(1, 150, to=2)]) == [T.INSUFFICIENT_BALANCE]
    # Not within one batch either (it was, before the pending state).
    assert pool.add([pay(2, 90, to=3), pay(3, 150, to=0)]) == [None, T.INSUFFICIENT_BALANCE]


def test_an_account_created_by_a_queued_transfer_cannot_send_yet():
    pool = Mempool(genesis(), genesis_hash=CHAIN)
    assert pool.add([pay(0, 50, to=5)]) == [None]
    assert pool.add([pay(5, 10, to=0)]) == [T.UNKNOWN_SENDER]


def test_any_selection_makes_a_valid_block():
    """Every chain goes into a block alone: no queued transaction relies on another sender's."""
    state = genesis()
    pool = Mempool(state, genesis_hash=CHAIN)
    chain = [pay(0, 90, to=1), pay(1, 90, to=2), pay(2, 90, to=3)]
    assert pool.add(chain) == [None, None, None]
    for n in range(1, 4):
        state.prepare(pool.select(n), producer=4)


def test_a_full_pool_refusal_leaves_no_trace_in_the_pending_state():
    state = genesis()
    pool = Mempool(state, genesis_hash=CHAIN, max_count=2)
    assert pool.add([pay(1, fee=5), pay(2, fee=5)]) == [None, None]
    assert pool.add([pay(0, 95, fee=1)]) == ["mempool full: fee too low"]
    assert pool.add([pay(1, fee=5, nonce=1), pay(0, 95, fee=1)]) == [
        "mempool full: fee too low",
        "mempool full: fee too low",
    ]
    # Account 0 still has its 100 for a transaction that pays enough to get in.
    assert pool.add([pay(0, 90, fee=9)]) == [None]
    assert pool.evicted == 1


def test_an_evicted_transaction_no_longer_counts_for_its_sender():
    state = genesis()
    pool = Mempool(state, genesis_hash=CHAIN, max_count=2)
    assert pool.add([pay(0, 60, fee=1), pay(1, fee=5)]) == [None, None]
    assert pool.add([pay(2, fee=9)]) == [None]  # evicts account 0's transfer
    assert pool.pending(KEYS[0]) == []
    assert pool.add([pay(3, fee=9, nonce=0)]) == [None]  # evicts account 1's
    assert pool.add([pay(0, 85, fee=10, nonce=0)]) == [None]


# --- PendingState ------------------------------------------------------------------------


def test_pending_state_api():
    state = genesis()
    pending = PendingState()
    assert pending.version is None and len(pending) == 0
    with pytest.raises(ValueError, match="built on state version none"):
        pending.check_and_add(state, [pay(0)])
    queued = [pay(0, 50), pay(0, 50, nonce=1), pay(1, 20)]
    assert pending.rebuild(state, queued) == 2  # 50 + 1 + 50 + 1 > 100
    assert pending.version == 0
    assert pending.check_and_add(state, [pay(0, 40, nonce=1), pay(1, 80, nonce=1)]) == [
        None,
        T.INSUFFICIENT_BALANCE,
    ]
    assert len(pending) == 3
    # Account 0 again from its queue alone (its nonce-1 transfer was refused by a limit).
    assert pending.redo(state, [KEYS[0]], [queued[0]]) == 1
    assert pending.check_and_add(state, [pay(0, 48, nonce=1)]) == [None]
    state.apply([pay(2)], producer=3)
    with pytest.raises(ValueError, match="built on state version 0, the state is at version 1"):
        pending.check_and_add(state, [pay(0)])
    with pytest.raises(ValueError, match="version"):
        pending.redo(state, [KEYS[0]], [])
    with pytest.raises(ValueError, match=r"senders\[0\] must be 32 bytes"):
        pending.rebuild(state, []) or pending.redo(state, [b"short"], [])
    with pytest.raises(TypeError, match="transactions"):
        pending.check_and_add(state, 5)
    assert "version=1" in repr(pending)


# --- against the reference ------------------------------------------------------------------


@st.composite
def batches(draw: st.DrawFn, pool: Mempool, state: AccountState) -> list[Transaction]:
    txs = []
    next_nonce: dict[int, int] = {}
    for _ in range(draw(st.integers(1, 8))):
        s = draw(st.integers(0, len(KEYS) - 1))
        if s not in next_nonce:
            account = state.id_of(KEYS[s])
            base = 0 if account is None else state.nonce(account)
            next_nonce[s] = base + len(pool.pending(KEYS[s]))
        nonce = max(0, next_nonce[s] + draw(st.sampled_from([0, 0, 0, -1, 1])))
        next_nonce[s] = nonce + 1
        fee = draw(st.integers(0, 6))
        if draw(st.integers(0, 9)) == 0:
            to = draw(st.integers(0, FUNDED - 1))  # a delegate with an account
            txs.append(delegation(KEYPAIRS[s], KEYS[to], fee=fee, nonce=nonce, chain=CHAIN))
        else:
            to = draw(st.integers(0, len(KEYS) - 1))
            amount = draw(st.integers(1, 70))
            txs.append(transfer(KEYPAIRS[s], KEYS[to], amount, fee=fee, nonce=nonce, chain=CHAIN))
    return txs


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_admission_equals_the_sender_by_sender_reference(data):
    state = genesis()
    limits = {"max_count": data.draw(st.integers(3, 14)), "max_per_sender": 3}
    pool, reference = (
        Mempool(state, genesis_hash=CHAIN, **limits),
        EagerTails(state, genesis_hash=CHAIN, **limits),
    )
    for _ in range(data.draw(st.integers(1, 14))):
        if data.draw(st.integers(0, 3)) == 0 and len(pool):
            block = pool.select(data.draw(st.integers(1, 6)))
            state.apply(block, producer=0)
            if data.draw(st.booleans()):
                senders = {tx.sender for tx in block}
                assert pool.recheck(senders) == reference.recheck(senders)
            else:
                assert pool.recheck() == reference.recheck()
        else:
            batch = data.draw(batches(pool, state))
            assert pool.add(batch) == reference.add(batch)
            assert pool.evicted == reference.evicted
        assert [t.id for t in pool.select(100)] == [t.id for t in reference.select(100)]
        state.prepare(pool.select(100), producer=0)
