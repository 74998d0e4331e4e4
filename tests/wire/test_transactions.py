"""The transaction rules of the native account state, each with its reason, and
against a slow Python model (tests/_ledger_model.py)."""

from __future__ import annotations

import hashlib

import pytest
from _ledger_model import NO_DELEGATE, Model, genesis_entries
from hypothesis import given, settings
from hypothesis import strategies as st

from echorand.wire import transactions as T
from echorand.wire.crypto import Keypair, is_valid_account_key
from echorand.wire.messages import Block, Transaction
from echorand.wire.transactions import AccountState, delegation, transfer, verify_signatures

CHAIN = bytes(range(32))
"""The genesis hash transactions here are signed for (PROTOCOL §2)."""

KEYPAIRS = [Keypair.from_seed(hashlib.sha256(b"tx test %d" % i).digest()) for i in range(8)]
KEYS = [kp.public_key for kp in KEYPAIRS]
IDENTITY = bytes([1]) + bytes(31)  # the neutral point: small order
ORDER_4 = bytes(32)  # y = 0: a point of order 4
NON_CANONICAL = bytes.fromhex("ed" + "ff" * 30 + "7f")  # y = p
NOT_A_POINT = bytes([2]) + bytes(31)
BAD_KEYS = [IDENTITY, ORDER_4, NON_CANONICAL, NOT_A_POINT]
SIG = bytes(64)


def state_of(balances: list[int]) -> AccountState:
    return AccountState(genesis_entries(KEYS[: len(balances)], balances))


def tx(sender: int | bytes, recipient: int | bytes, amount: int, fee: int = 0, nonce: int = 0):
    s = KEYS[sender] if isinstance(sender, int) else sender
    r = KEYS[recipient] if isinstance(recipient, int) else recipient
    return Transaction(Transaction.TRANSFER, s, r, amount, fee, nonce, SIG)


def deleg(sender: int, delegate: int | bytes, fee: int = 0, nonce: int = 0) -> Transaction:
    d = KEYS[delegate] if isinstance(delegate, int) else delegate
    return Transaction(Transaction.DELEGATION, KEYS[sender], d, 0, fee, nonce, SIG)


def unpack(delegates: bytes) -> list[int | None]:
    """`AccountState.delegates()` as a list, None for no delegate."""
    return [None if d == NO_DELEGATE else d for d in memoryview(delegates).cast("Q")]


# --- each rule, with its reason ---------------------------------------------------


def test_a_valid_transfer_is_accepted():
    assert state_of([100, 0]).check([tx(0, 1, 90, fee=10)]) == [None]


def test_unknown_sender():
    assert state_of([100]).check([tx(KEYS[5], 0, 1)]) == [T.UNKNOWN_SENDER]


def test_nonce_must_be_the_number_of_transactions_sent():
    state = state_of([100, 0])
    assert state.check([tx(0, 1, 1, nonce=1)]) == [T.NONCE_TOO_HIGH]
    state.apply([tx(0, 1, 1, nonce=0)], producer=1)
    assert state.nonce(0) == 1
    assert state.check([tx(0, 1, 1, nonce=0)]) == [T.NONCE_TOO_LOW]
    assert state.check([tx(0, 1, 1, nonce=1)]) == [None]


def test_balance_must_cover_amount_plus_fee():
    state = state_of([100, 0])
    assert state.check([tx(0, 1, 91, fee=10)]) == [T.INSUFFICIENT_BALANCE]
    assert state.check([tx(0, 1, 90, fee=10)]) == [None]
    assert state.check([tx(0, 1, 2**64 - 1, fee=2**64 - 1)]) == [T.INSUFFICIENT_BALANCE]


def test_a_second_spend_of_the_same_funds_is_refused():
    state = state_of([100, 0, 0])
    batch = [tx(0, 1, 60), tx(0, 2, 60, nonce=1), tx(0, 2, 40, nonce=1)]
    assert state.check(batch) == [None, T.INSUFFICIENT_BALANCE, None]


def test_transfer_amount_is_at_least_one():
    assert state_of([100, 0]).check([tx(0, 1, 0, fee=1)]) == [T.ZERO_AMOUNT]


def test_a_transfer_to_oneself_is_refused():
    assert state_of([100]).check([tx(0, 0, 1)]) == [T.SELF_TRANSFER]


@pytest.mark.parametrize("key", BAD_KEYS, ids=["identity", "order-4", "y=p", "not-a-point"])
def test_no_account_for_a_small_order_or_non_canonical_key(key):
    assert not is_valid_account_key(key)
    state = state_of([100])
    assert state.check([tx(0, key, 5)]) == [T.BAD_RECIPIENT_KEY]
    assert T.BAD_RECIPIENT_KEY == "recipient key is small-order or non-canonical"


def test_a_new_valid_key_gets_the_next_account_id():
    state = state_of([100])
    changes = state.apply([tx(0, 3, 5, fee=1)], producer=0)
    assert len(state) == 2
    assert state.id_of(KEYS[3]) == 1
    assert changes.new_accounts() == [(KEYS[3], 1)]
    assert state.account(1) == (5, 0, 0)  # its registrar, account 0, is its delegate
    assert state.account(0) == (95, 1, None)  # the fee came back: it produced the block


def test_the_registrar_is_the_default_delegate_until_a_delegation():
    state = state_of([100, 50])
    state.apply([tx(0, 2, 20), tx(2, 3, 5)], producer=0)
    assert [state.account(i)[2] for i in range(4)] == [None, None, 0, 2]
    state.apply([deleg(2, 1, nonce=1), deleg(3, 3)], producer=0)
    assert state.account(2)[2] == 1  # an explicit delegation overrides the registrar
    assert state.account(3)[2] is None  # delegating to oneself clears the default too
    again = state.apply([deleg(3, 2, nonce=1)], producer=0)
    assert state.account(3)[2] == 2
    assert unpack(state.delegates()) == [None, None, 1, 2]
    assert unpack(state.delegates([again.undo])) == [None, None, 1, None]
    assert AccountState.from_records(state.records()).records() == state.records()


def test_delegation_sets_and_clears_the_delegate():
    state = state_of([100, 50])
    assert state.check([deleg(0, 5)]) == [T.UNKNOWN_DELEGATE]
    assert state.check([deleg(0, 1, fee=101)]) == [T.INSUFFICIENT_BALANCE]
    state.apply([deleg(0, 1, fee=3)], producer=1)
    assert state.account(0) == (97, 1, 1)
    state.apply([deleg(0, 0, nonce=1)], producer=1)
    assert state.account(0) == (97, 2, None)


def test_raw_buffers_with_an_unknown_kind_or_a_delegated_amount_are_refused():
    good = tx(0, 1, 5).encode()
    unknown_kind = bytes([2]) + good[1:]
    delegated_amount = bytes([1]) + good[1:]
    state = state_of([100, 0])
    assert state.check(unknown_kind + delegated_amount + good) == [
        T.UNKNOWN_KIND,
        T.DELEGATION_AMOUNT,
        None,
    ]


def test_pending_transactions_are_applied_first():
    state = state_of([100, 0])
    assert state.check([tx(0, 1, 50, nonce=1)], pending=[tx(0, 1, 50)]) == [None]
    assert state.check([tx(0, 1, 51, nonce=1)], pending=[tx(0, 1, 50)]) == [T.INSUFFICIENT_BALANCE]
    assert state.check([tx(0, 1, 5, nonce=0)], pending=[tx(0, 1, 50)]) == [T.NONCE_TOO_LOW]


def test_check_changes_nothing():
    state = state_of([100, 0])
    before = state.records()
    state.check([tx(0, 1, 50), tx(0, 4, 10, nonce=1)])
    assert state.records() == before and state.version == 0


# --- blocks: all or nothing ---------------------------------------------------------


def test_prepare_names_the_first_refused_transaction_and_changes_nothing():
    state = state_of([100, 0])
    before = state.records()
    with pytest.raises(ValueError, match="transaction 1: nonce too high"):
        state.prepare([tx(0, 1, 5), tx(0, 1, 5, nonce=5)], producer=1)
    assert state.records() == before


def test_fees_go_to_the_producer_after_the_block():
    state = state_of([100, 0, 0])
    # The producer (2) cannot spend this block's fees within the block.
    batch = [tx(0, 1, 10, fee=7), tx(2, 1, 1, fee=0)]
    with pytest.raises(ValueError, match="transaction 1: insufficient balance"):
        state.prepare(batch, producer=2)
    changes = state.apply(batch[:1], producer=2)
    assert changes.fees == 7
    assert state.balance(2) == 7
    assert state.total == 100


def test_a_block_with_transactions_needs_a_known_producer():
    state = state_of([100, 0])
    with pytest.raises(ValueError, match="producer 7 has no account"):
        state.prepare([tx(0, 1, 5)], producer=7)
    with pytest.raises(ValueError, match="without a producer"):
        state.prepare([tx(0, 1, 5)])
    assert len(state.prepare([])) == 0


def test_a_block_brings_its_transactions_and_producer():
    state = state_of([100, 0])
    block = Block(1, bytes(32), 1, bytes(64), [tx(0, 1, 5, fee=2)], bytes(64))
    changes = state.prepare(block)
    assert (changes.tx_count, changes.producer, changes.fees) == (1, 1, 2)
    with pytest.raises(ValueError, match="differs from the block's producer"):
        state.prepare(block, producer=0)
    assert state.prepare(Block.empty(1, bytes(32))).tx_count == 0


def test_changes_apply_once_and_only_to_their_state():
    state = state_of([100, 0])
    changes = state.prepare([tx(0, 1, 5)], producer=1)
    state.commit(changes)
    with pytest.raises(ValueError, match="prepared against state version 0"):
        state.commit(changes)


def test_changes_describe_records_undo_and_stake_updates():
    state = state_of([100, 0, 30])
    changes = state.apply([tx(0, 1, 10, fee=1), tx(0, 5, 4, nonce=1)], producer=2)
    assert changes.accounts_before == 3 and changes.accounts_after == 4
    assert changes.new_keys == KEYS[5]
    ids = [int.from_bytes(k, "big") for k, _ in changes.records()]
    assert ids == [0, 1, 2, 3]
    assert b"".join(r for _, r in changes.records()) == state.records()
    assert changes.balance_updates() == {0: 85, 1: 10, 2: 31}
    assert list(memoryview(changes.new_balances()).cast("Q")) == [4]
    assert list(memoryview(state.balances([changes.undo])).cast("Q")) == [100, 0, 30]
    entry = changes.changed()[:32]
    assert [int.from_bytes(entry[i : i + 8], "big") for i in range(0, 32, 8)] == [
        0,
        85,
        2,
        NO_DELEGATE,
    ]


def test_records_round_trip():
    state = state_of([100, 0, 30])
    state.apply([tx(0, 1, 10), deleg(2, 0), tx(0, 6, 4, nonce=1)], producer=2)
    again = AccountState.from_records(state.records())
    assert again.records() == state.records()
    assert again.id_of(KEYS[6]) == 3 and again.total == state.total
    records = state.records()
    parts = [records[:56], b"", memoryview(records)[56:]]
    assert AccountState.from_records(iter(parts), 4).records() == records
    with pytest.raises(ValueError, match=r"records: \d+ bytes is not a whole number"):
        AccountState.from_records([records[:50], records[50:]])
    with pytest.raises(TypeError, match="iterable of bytes-like parts, not int"):
        AccountState.from_records(5)


# --- bad input ---------------------------------------------------------------------


def test_genesis_entries_are_checked():
    with pytest.raises(ValueError, match="whole number of 40-byte entries"):
        AccountState(b"x" * 41)
    with pytest.raises(ValueError, match=r"account 1: public key .* repeats account 0"):
        AccountState(genesis_entries([KEYS[0], KEYS[0]], [1, 1]))
    with pytest.raises(ValueError, match=r"2\*\*63"):
        AccountState(genesis_entries(KEYS[:2], [2**62, 2**62]))
    with pytest.raises(ValueError, match=r"account 1: public key .* small-order"):
        AccountState(genesis_entries([KEYS[0], IDENTITY], [1, 1]))
    assert len(AccountState(genesis_entries([KEYS[0], IDENTITY], [1, 1]), check_keys=False)) == 2


def test_transaction_arguments_are_checked():
    state = state_of([100])
    with pytest.raises(ValueError, match="whole 153-byte encodings"):
        state.check(b"x" * 152)
    with pytest.raises(TypeError, match=r"transactions\[1\] must be a Transaction"):
        state.check([tx(0, 1, 1), "nope"])
    with pytest.raises(TypeError, match="not str"):
        state.check("abc")
    with pytest.raises(ValueError, match="unknown account 5"):
        state.account(5)
    with pytest.raises(ValueError, match="public_key must be 32 bytes"):
        state.id_of(b"short")


def test_signatures_are_verified_in_one_batch():
    good = transfer(KEYPAIRS[0], KEYS[1], 5, fee=1, nonce=0, chain=CHAIN)
    forged = Transaction(0, KEYS[0], KEYS[1], 6, 1, 0, good.signature)
    assert verify_signatures(
        [good, forged, delegation(KEYPAIRS[2], KEYS[0], fee=0, nonce=3, chain=CHAIN)], CHAIN
    ) == [
        True,
        False,
        True,
    ]


# --- against the slow model ---------------------------------------------------------

KEY_POOL = KEYS + BAD_KEYS


@st.composite
def scenarios(draw):
    n = draw(st.integers(1, 5))
    balances = draw(st.lists(st.integers(0, 1000), min_size=n, max_size=n))
    model = Model(zip(KEYS[:n], balances, strict=True))
    txs = []
    for _ in range(draw(st.integers(0, 25))):
        sender = draw(st.sampled_from(KEY_POOL[: n + 2]))
        recipient = draw(st.sampled_from(KEY_POOL))
        kind = draw(st.sampled_from([0, 0, 0, 1]))
        sid = model.index.get(sender)
        expected = model.accounts[sid].nonce if sid is not None else 0
        nonce = max(0, expected + draw(st.sampled_from([0, 0, 0, -1, 1])))
        amount = 0 if kind == 1 else draw(st.integers(0, 600))
        fee = draw(st.integers(0, 60))
        t = Transaction(kind, sender, recipient, amount, fee, nonce, SIG)
        model.step(t)  # track nonces so that most transactions are plausible
        txs.append(t)
    producer = draw(st.integers(0, n - 1))
    return balances, txs, producer


@settings(max_examples=300)
@given(scenarios())
def test_check_agrees_with_the_model(scenario):
    balances, txs, _ = scenario
    state = state_of(balances)
    model = Model(zip(KEYS, balances, strict=False))
    assert state.check(txs) == model.check(txs)
    half = len(txs) // 2
    assert state.check(txs[half:], pending=txs[:half]) == model.check(txs[half:], txs[:half])


@settings(max_examples=300)
@given(scenarios())
def test_apply_agrees_with_the_model(scenario):
    balances, txs, producer = scenario
    state = state_of(balances)
    model = Model(zip(KEYS, balances, strict=False))
    # The accepted transactions of a check make a block that applies.
    ok = [t for t, r in zip(txs, model.check(txs), strict=True) if r is None]
    for block in (txs, ok):
        try:
            model.apply(block, producer)
        except ValueError as e:
            with pytest.raises(ValueError) as info:
                state.apply(block, producer)
            assert str(info.value) == str(e)
            continue
        before = state.balances()
        delegates_before = state.delegates()
        changes = state.apply(block, producer)
        assert state.records() == model.records()
        assert unpack(state.delegates()) == model.delegates()
        assert state.total == sum(model.balances())
        assert state.balances([changes.undo]) == before
        assert state.delegates([changes.undo]) == delegates_before


def test_the_state_judges_account_keys_as_the_crypto_module_does():
    """The state's own key check (no re-encoding) against `is_valid_account_key`:
    the keys and R points of every Ed25519 vector, edge encodings, random bytes."""
    from _ed25519_data import cctv, speccheck, wycheproof

    cases = speccheck() + wycheproof() + cctv()
    keys = {c.public_key for c in cases if len(c.public_key) == 32}
    keys |= {c.signature[:32] for c in cases if len(c.signature) == 64}
    for low in range(0xEB, 0x100):
        for top in (0x7F, 0xFF):
            keys.add(bytes([low]) + b"\xff" * 30 + bytes([top]))
    for y in range(4):
        for top in (0x00, 0x80):
            keys.add(bytes([y]) + bytes(30) + bytes([top]))
    keys |= {hashlib.sha256(b"random %d" % i).digest() for i in range(2000)}
    ordered = sorted(keys)
    expected = [is_valid_account_key(k) for k in ordered]
    assert T.valid_account_keys(b"".join(ordered)) == expected
    assert 50 < sum(expected) < len(ordered) - 50
