"""The mempool: each refusal with its reason, limits and eviction, fee order, rechecks."""

from __future__ import annotations

import hashlib

import pytest
from _ledger_model import genesis_entries

from echorand.ledger.mempool import (
    ALREADY_QUEUED,
    FEE_TOO_LOW,
    MEMPOOL_FULL,
    SENDER_LIMIT,
    Mempool,
)
from echorand.wire import transactions as T
from echorand.wire.crypto import Keypair
from echorand.wire.messages import Transaction
from echorand.wire.transactions import AccountState, transfer

CHAIN = bytes(range(32))
"""The genesis hash transactions here are signed for (PROTOCOL §2)."""

KEYPAIRS = [Keypair.from_seed(hashlib.sha256(b"mempool %d" % i).digest()) for i in range(8)]
KEYS = [kp.public_key for kp in KEYPAIRS]
OUTSIDER = Keypair.from_seed(hashlib.sha256(b"outsider").digest())
SMALL_ORDER = bytes([1]) + bytes(31)


def pay(sender: int, amount: int = 10, *, fee: int = 1, nonce: int = 0, to: int | bytes = 7):
    recipient = KEYS[to] if isinstance(to, int) else to
    return transfer(KEYPAIRS[sender], recipient, amount, fee=fee, nonce=nonce, chain=CHAIN)


@pytest.fixture
def state() -> AccountState:
    return AccountState(genesis_entries(KEYS, [100] * len(KEYS)))


@pytest.fixture
def pool(state: AccountState) -> Mempool:
    return Mempool(state, genesis_hash=CHAIN)


# --- reasons ---------------------------------------------------------------------------


def test_a_valid_transaction_is_queued(pool):
    tx = pay(0)
    assert pool.add([tx]) == [None]
    assert len(pool) == 1 and tx.id in pool and pool.get(tx.id) == tx
    assert pool.nbytes == 153


def test_bad_signature(pool):
    good = pay(0)
    forged = Transaction(0, good.sender, good.recipient, 99, good.fee, 0, good.signature)
    assert pool.add([forged]) == [T.BAD_SIGNATURE] == ["bad signature"]
    assert len(pool) == 0


def test_signatures_of_verified_ids_are_not_checked_again(pool, monkeypatch):
    import echorand.ledger.mempool as mempool_module

    seen: list[int] = []
    real = mempool_module.verify_signatures

    def counting(txs, chain):
        seen.append(len(txs))
        return real(txs, chain)

    monkeypatch.setattr(mempool_module, "verify_signatures", counting)
    known, new = pay(0), pay(1)
    good = pay(2)
    forged = Transaction(0, good.sender, good.recipient, 99, good.fee, 0, good.signature)
    assert pool.add([known, new, forged], verified={known.id}) == [None, None, T.BAD_SIGNATURE]
    assert seen == [2]


def test_duplicates_in_a_batch_and_across_batches(pool):
    tx = pay(0)
    assert pool.add([tx, tx]) == [None, ALREADY_QUEUED]
    assert pool.add([tx]) == [ALREADY_QUEUED] == ["already in the mempool"]


def test_nonce_too_low_and_too_high(pool, state):
    assert pool.add([pay(0, nonce=1)]) == [T.NONCE_TOO_HIGH] == ["nonce too high"]
    state.apply([pay(0, nonce=0)], producer=1)
    assert pool.add([pay(0, nonce=0, amount=11)]) == [T.NONCE_TOO_LOW] == ["nonce too low"]
    assert pool.add([pay(0, nonce=1)]) == [None]


def test_queued_transactions_of_the_sender_count(pool):
    assert pool.add([pay(0, 60, nonce=0)]) == [None]
    assert pool.add([pay(0, 60, nonce=1)]) == [T.INSUFFICIENT_BALANCE]
    assert pool.add([pay(0, 30, nonce=1), pay(0, 5, nonce=3)]) == [None, T.NONCE_TOO_HIGH]
    assert [tx.nonce for tx in pool.pending(KEYS[0])] == [0, 1]


def test_insufficient_balance(pool):
    assert pool.add([pay(0, 100, fee=1)]) == ["insufficient balance"]


def test_unknown_sender(pool):
    tx = transfer(OUTSIDER, KEYS[0], 1, fee=1, nonce=0, chain=CHAIN)
    assert pool.add([tx]) == [T.UNKNOWN_SENDER] == ["unknown sender"]


def test_small_order_recipient(pool):
    assert pool.add([pay(0, to=SMALL_ORDER)]) == ["recipient key is small-order or non-canonical"]


def test_fee_below_the_minimum(state):
    pool = Mempool(state, genesis_hash=CHAIN, min_fee=2)
    assert pool.add([pay(0, fee=1), pay(1, fee=2)]) == [FEE_TOO_LOW, None]


def test_a_batch_gets_one_reason_per_transaction(pool):
    batch = [
        pay(0),
        pay(0),
        Transaction(0, KEYS[1], KEYS[2], 5, 1, 0, bytes(64)),
        pay(2, nonce=4),
        pay(3, 500),
        pay(4, nonce=0),
        pay(4, nonce=1),
    ]
    assert pool.add(batch) == [
        None,
        ALREADY_QUEUED,
        T.BAD_SIGNATURE,
        T.NONCE_TOO_HIGH,
        T.INSUFFICIENT_BALANCE,
        None,
        None,
    ]


def test_a_sender_may_queue_so_many(state):
    pool = Mempool(state, genesis_hash=CHAIN, max_per_sender=2)
    assert pool.add([pay(0, 1, nonce=n) for n in range(3)]) == [None, None, SENDER_LIMIT]


# --- limits and eviction ----------------------------------------------------------------


def test_when_full_a_better_fee_evicts_the_lowest(state):
    pool = Mempool(state, genesis_hash=CHAIN, max_count=3)
    low, mid, high = pay(0, fee=5), pay(1, fee=6), pay(2, fee=7)
    assert pool.add([low, mid, high]) == [None, None, None]
    assert pool.add([pay(3, fee=5)]) == [MEMPOOL_FULL] == ["mempool full: fee too low"]
    better = pay(3, fee=6)
    assert pool.add([better]) == [None]
    assert low.id not in pool and better.id in pool and len(pool) == 3
    assert pool.evicted == 1


def test_the_byte_limit_is_a_count_of_153_byte_transactions(state):
    pool = Mempool(state, genesis_hash=CHAIN, max_bytes=2 * 153 + 100)
    assert pool.add([pay(0, fee=1), pay(1, fee=1), pay(2, fee=1)]) == [None, None, MEMPOOL_FULL]


def test_among_equal_fees_the_latest_arrival_goes_first(state):
    pool = Mempool(state, genesis_hash=CHAIN, max_count=2)
    first, second = pay(0, fee=3), pay(1, fee=3)
    pool.add([first, second])
    assert pool.add([pay(2, fee=4)]) == [None]
    assert first.id in pool and second.id not in pool


def test_eviction_takes_chain_ends_only(state):
    pool = Mempool(state, genesis_hash=CHAIN, max_count=3)
    a0, a1, b = pay(0, fee=1, nonce=0), pay(0, fee=10, nonce=1), pay(1, fee=5)
    pool.add([a0, a1, b])
    assert pool.add([pay(2, fee=6)]) == [None]  # b (5) goes; a0 (1) is not a chain end
    assert b.id not in pool and a0.id in pool
    assert pool.add([pay(3, fee=20)]) == [None]  # then the 6; a0 still protected by a1
    assert a0.id in pool and a1.id in pool
    assert pool.add([pay(4, fee=11)]) == [None]  # now a1 (10) is the lowest end
    assert a1.id not in pool and a0.id in pool


def test_a_transaction_cannot_evict_its_own_predecessor(state):
    pool = Mempool(state, genesis_hash=CHAIN, max_count=1)
    pool.add([pay(0, fee=1, nonce=0)])
    assert pool.add([pay(0, 1, fee=50, nonce=1)]) == [MEMPOOL_FULL]


def test_a_refused_transaction_breaks_the_rest_of_its_chain_in_the_batch(state):
    pool = Mempool(state, genesis_hash=CHAIN, max_count=2)
    pool.add([pay(1, fee=5), pay(2, fee=5)])
    assert pool.add([pay(0, fee=1, nonce=0), pay(0, fee=9, nonce=1)]) == [
        MEMPOOL_FULL,
        T.NONCE_TOO_HIGH,
    ]


# --- blocks -------------------------------------------------------------------------------


def test_select_takes_fees_first_and_nonces_in_order(pool):
    a0, a1 = pay(0, fee=1, nonce=0), pay(0, fee=50, nonce=1)
    b, c, d = pay(1, fee=10), pay(2, fee=5), pay(3, fee=5)
    assert pool.add([a0, a1, b, c, d]) == [None] * 5
    assert pool.select(10) == [b, c, d, a0, a1]
    assert pool.select(2) == [b, c]
    assert pool.select(10, max_bytes=3 * 153) == [b, c, d]
    assert len(pool) == 5


def test_selected_transactions_make_a_valid_block(pool, state):
    txs = [pay(s, 5 + n, fee=s + n, nonce=n) for s in range(6) for n in range(3)]
    assert pool.add(txs) == [None] * len(txs)
    block = pool.select(100)
    assert sorted(t.id for t in block) == sorted(t.id for t in txs)
    state.apply(block, producer=7)


def test_recheck_drops_included_and_invalidated_transactions(pool, state):
    keep = pay(1, 10)
    a0, a1 = pay(0, 40, nonce=0), pay(0, 40, nonce=1)
    included = pay(2, 10)
    pool.add([keep, a0, a1, included])
    # A block spends account 0's funds another way, and includes `included`.
    state.apply([pay(0, 90, nonce=0, to=6), included], producer=7)
    assert pool.recheck() == 3
    assert len(pool) == 1 and keep.id in pool
    assert pool.add([pay(0, 5, nonce=1)]) == [None]
    assert pool.recheck() == 0


def test_recheck_of_a_blocks_senders_drops_the_same(pool, state):
    keep = pay(1, 10)
    a0, a1 = pay(0, 40, nonce=0), pay(0, 40, nonce=1)
    included = pay(2, 10)
    other = pay(3, 10)
    pool.add([keep, a0, a1, included, other])
    block = [pay(0, 90, nonce=0, to=6), included]
    state.apply(block, producer=7)
    assert pool.recheck(tx.sender for tx in block) == 3
    assert len(pool) == 2 and keep.id in pool and other.id in pool
    assert pool.recheck() == 0  # the full check agrees
    # The shortened chains still end where eviction and selection expect.
    assert pool.add([pay(0, 5, nonce=1)]) == [None]
    assert sorted(t.id for t in pool.select(10)) == sorted(
        t.id for t in [keep, other, pay(0, 5, nonce=1)]
    )
