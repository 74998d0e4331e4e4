"""The native mempool against its model, the former Python one (`PyMempool`).

Both are driven through the same random interleavings of admissions (senders known and
unknown, nonces used, next, ahead and repeated, fees from 0 to past 2^63, forged
signatures, ids given as verified or refuted), selections, blocks (a selection of the
pool, or transactions of their own that conflict with it) and rechecks (of the block's
senders, of all, or none before the next admission), under limits small enough that
eviction and the per-sender limit happen; every answer must be the same: each reason,
`to_verify`, `select`, the queue's contents, each sender's chain and `evicted`.
"""

from __future__ import annotations

import functools
import hashlib

import pytest
from _ledger_model import genesis_entries
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from echorand._native import POOL_REASONS, MempoolQueue
from echorand.ledger.mempool import Mempool
from echorand.tools.benchmarks.mempool_model import PyMempool
from echorand.wire import transactions as T
from echorand.wire.crypto import Keypair
from echorand.wire.messages import Transaction
from echorand.wire.transactions import AccountState, delegation, transfer

CHAIN = bytes(range(32))
"""The genesis hash transactions here are signed for (PROTOCOL §2)."""

KEYPAIRS = [Keypair.from_seed(hashlib.sha256(b"native pool %d" % i).digest()) for i in range(7)]
KEYS = [kp.public_key for kp in KEYPAIRS]
BALANCES = [100, 100, 60, 2**62, 30]
"""KEYPAIRS[:5] have accounts at genesis (one rich enough for fees past 2^62); the
others only once a block pays them."""
SMALL_ORDER = bytes([1]) + bytes(31)
FEES = [0, 1, 1, 2, 2, 3, 5, 2**62 - 1, 2**63, 2**64 - 1]
"""Few values, so that equal fees meet at eviction and in selection."""


def genesis() -> AccountState:
    return AccountState(genesis_entries(KEYS[: len(BALANCES)], BALANCES))


@functools.cache
def signed(kind: int, sender: int, to: bytes, amount: int, fee: int, nonce: int) -> Transaction:
    """A signed transaction (cached: signing is the slow part of these tests)."""
    if kind == Transaction.DELEGATION:
        return delegation(KEYPAIRS[sender], to, fee=fee, nonce=nonce, chain=CHAIN)
    return transfer(KEYPAIRS[sender], to, amount, fee=fee, nonce=nonce, chain=CHAIN)


def forged(tx: Transaction) -> Transaction:
    sig = bytes([tx.signature[0] ^ 1]) + tx.signature[1:]
    return Transaction(tx.kind, tx.sender, tx.recipient, tx.amount, tx.fee, tx.nonce, sig)


def queued_senders(pool: Mempool) -> list[int]:
    return [s for s, key in enumerate(KEYS) if pool.pending(key)]


def a_sender(data: st.DataObject | st.DrawFn, pool: Mempool) -> int:
    """Any sender, or one with a chain (most of the interesting cases are theirs)."""
    draw = data.draw if isinstance(data, st.DataObject) else data
    queued = queued_senders(pool)
    if queued and draw(st.booleans()):
        return draw(st.sampled_from(queued))
    return draw(st.integers(0, len(KEYS) - 1))


@st.composite
def transactions(
    draw: st.DrawFn, pool: Mempool, state: AccountState, history: list[Transaction]
) -> Transaction:
    """One transaction: a repeat of an earlier one, or a new one near its sender's next
    nonce (of the account, of the chain), of any kind, fee and recipient (valid or not),
    its signature forged or not."""
    if history and draw(st.integers(0, 5)) == 0:
        return draw(st.sampled_from(history))
    sender = a_sender(draw, pool)
    account = state.id_of(KEYS[sender])
    base = 0 if account is None else state.nonce(account)
    end = base + len(pool.pending(KEYS[sender]))
    nonce = max(0, draw(st.sampled_from([end, end, end, end - 1, end + 1, base, base - 1])))
    fee = draw(st.sampled_from(FEES))
    to = draw(st.sampled_from([*KEYS, SMALL_ORDER]))
    if draw(st.integers(0, 7)) == 0:
        tx = signed(Transaction.DELEGATION, sender, to, 0, fee, nonce)
    else:
        amounts = [0, 1, 5, 20, 45, 70, 2**62]
        if account is not None:
            # Near what the sender has left after its chain: a credit or a spend by a
            # block decides these.
            left = state.balance(account) - fee
            left -= sum(t.amount + t.fee for t in pool.pending(KEYS[sender]))
            amounts += [max(1, left + d) for d in (-5, 0, 5, 30)] * 2
        amount = draw(st.sampled_from(amounts))
        tx = signed(Transaction.TRANSFER, sender, to, amount, fee, nonce)
    return forged(tx) if draw(st.integers(0, 9)) == 0 else tx


def a_block(data: st.DataObject, pool: Mempool, state: AccountState) -> list[Transaction]:
    """A block that applies: a selection of the pool (what of it still applies, when a
    block went by without a recheck), or transactions of its own: a queued sender's next
    nonce spent otherwise, a credit to a queued sender."""
    if len(pool) and data.draw(st.booleans()):
        chosen = pool.select(data.draw(st.integers(1, 6)))
        return [tx for tx, r in zip(chosen, state.check(chosen), strict=True) if r is None]
    block: list[Transaction] = []
    for _ in range(data.draw(st.integers(1, 3))):
        sender = a_sender(data, pool)
        account = state.id_of(KEYS[sender])
        if account is None or any(tx.sender == KEYS[sender] for tx in block):
            continue
        to = KEYS[a_sender(data, pool)]
        amount = data.draw(st.sampled_from([1, 10, 40, 90]))
        tx = signed(Transaction.TRANSFER, sender, to, amount, 0, state.nonce(account))
        if state.check([*block, tx])[-1] is None:
            block.append(tx)
    return block


def assert_same(pool: Mempool, model: PyMempool, seen: list[Transaction]) -> None:
    assert len(pool) == len(model) and pool.nbytes == model.nbytes
    assert pool.evicted == model.evicted
    assert [t.id for t in pool.select(10**9)] == [t.id for t in model.select(10**9)]
    assert [t.id for t in pool.select(3, 2 * 153 + 1)] == [t.id for t in model.select(2)]
    for key in KEYS:
        assert [t.id for t in pool.pending(key)] == [t.id for t in model.pending(key)]
    for tx in seen:
        assert (tx.id in pool) == (tx.id in model)
        assert pool.get(tx.id) == model.get(tx.id)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_the_native_pool_answers_as_its_model(data: st.DataObject) -> None:
    state = genesis()
    limits = {
        "max_count": data.draw(st.integers(1, 12), label="max_count"),
        "max_bytes": data.draw(st.sampled_from([32 << 20, 153 * 5, 153 * 9 + 152])),
        "max_per_sender": data.draw(st.integers(1, 4), label="max_per_sender"),
        "min_fee": data.draw(st.sampled_from([0, 0, 1, 2])),
    }
    pool = Mempool(state, genesis_hash=CHAIN, **limits)
    model = PyMempool(state, genesis_hash=CHAIN, **limits)
    seen: list[Transaction] = []
    for _ in range(data.draw(st.integers(1, 16))):
        step = data.draw(st.sampled_from(["add", "add", "add", "block", "to_verify"]))
        if step == "block":
            block = a_block(data, pool, state)
            state.apply(block, producer=data.draw(st.integers(0, len(BALANCES) - 1)))
            recheck = data.draw(st.sampled_from(["senders", "all", "none"]))
            if recheck == "senders":
                senders = {tx.sender for tx in block}
                assert pool.recheck(senders) == model.recheck(senders)
            elif recheck == "all":
                assert pool.recheck() == model.recheck()
        else:
            batch = [
                data.draw(transactions(pool, state, seen))
                for _ in range(data.draw(st.integers(1, 8)))
            ]
            seen.extend(batch)
            verified = {tx.id for tx in batch if data.draw(st.integers(0, 3)) == 0}
            if step == "to_verify":
                ours = pool.to_verify(batch, verified)
                assert [t.id for t in ours] == [t.id for t in model.to_verify(batch, verified)]
                continue
            refuted = {tx.id for tx in batch if data.draw(st.integers(0, 7)) == 0}
            assert pool.add(batch, verified, refuted) == model.add(batch, verified, refuted)
        assert_same(pool, model, seen)


# --- the native class itself ---------------------------------------------------------------


def test_the_reason_texts_are_the_exported_constants():
    assert POOL_REASONS["BAD_SIGNATURE"] == T.BAD_SIGNATURE
    pool = Mempool(genesis(), genesis_hash=CHAIN, max_count=1, min_fee=1)
    a, b, c = (signed(0, s, KEYS[(s + 1) % 5], 5, 3, 0) for s in range(3))
    assert pool.add([a, a, c, forged(b), signed(0, 2, KEYS[0], 5, 0, 0)]) == [
        None,
        "already in the mempool",
        "mempool full: fee too low",
        "bad signature",
        "fee below the mempool minimum",
    ]


def test_select_get_and_pending_return_the_admitted_objects():
    pool = Mempool(genesis(), genesis_hash=CHAIN)
    txs = [signed(0, 0, KEYS[1], 5, 1, n) for n in range(3)]
    assert pool.add(txs) == [None] * 3
    assert all(a is b for a, b in zip(pool.select(10), txs, strict=True))
    assert pool.get(txs[1].id) is txs[1] and pool.get(b"no such id") is None
    assert pool.pending(KEYS[0])[2] is txs[2] and pool.pending(b"short") == []
    assert 5 not in pool and b"" not in pool
    assert pool.select(-1) == [] and pool.select(10**30) == txs


def test_an_admission_that_fails_changes_nothing():
    """An exception from the containers or from `verify` leaves the queue as it was."""
    state = genesis()
    queue = MempoolQueue(state, capacity=10, max_per_sender=10)
    tx = signed(0, 0, KEYS[1], 5, 1, 0)

    def broken(_txs: list[Transaction]) -> list[bool]:
        raise RuntimeError("no verifier")

    with pytest.raises(RuntimeError, match="no verifier"):
        queue.add([tx], None, None, broken)
    with pytest.raises(ValueError, match="verify returned 0 answers for 1 transactions"):
        queue.add([tx], None, None, lambda txs: [])
    assert len(queue) == 0
    assert queue.add([tx], None, None, lambda txs: [True]) == [None]
    with pytest.raises(TypeError, match=r"transactions\[1\] must be a Transaction, not int"):
        queue.add([tx, 5], None, None, broken)
    with pytest.raises(ValueError, match="capacity must be in 1"):
        MempoolQueue(state, capacity=0, max_per_sender=1)
    assert "1 queued" in repr(queue)


def test_a_block_that_credits_a_queued_sender_is_seen_at_its_next_admission():
    """The pending state is cached per sender and stepped again when a block changed the
    sender's account (here a credit from another sender, which no recheck of the block's
    senders looks at)."""
    state = genesis()
    pool = Mempool(state, genesis_hash=CHAIN)
    first = signed(0, 4, KEYS[0], 20, 1, 0)
    assert pool.add([first]) == [None]
    assert pool.add([signed(0, 4, KEYS[0], 20, 1, 1)]) == [T.INSUFFICIENT_BALANCE]
    credit = signed(0, 1, KEYS[4], 50, 0, 0)
    state.apply([credit], producer=0)
    assert pool.recheck({credit.sender}) == 0
    assert pool.add([signed(0, 4, KEYS[0], 20, 1, 1)]) == [None]
