"""The Python API of PROTOCOL.md §8, called exactly as written there."""

from __future__ import annotations

import hashlib
from array import array

from nacl.signing import SigningKey


def test_stake_table_api() -> None:
    from echorand.protocol.sortition import StakeTable

    balances = [5, 0, 10, 1, 0, 84]
    table = StakeTable(balances)
    seed = bytes(range(32))
    seats = table.committee(seed, 1, 2, 50)
    assert len(seats) == 50
    assert all(balances[a] > 0 for a in seats)
    # Seat 0 by the formula of §3, by hand.
    x0 = int.from_bytes(
        hashlib.sha256(seed + (1).to_bytes(8, "big") + (2).to_bytes(4, "big")).digest(), "big"
    )
    x0 %= sum(balances)
    prefix = 0
    for account, balance in enumerate(balances):
        prefix += balance
        if prefix > x0:
            assert seats[0] == account
            break
    table.update({1: 100, 5: 0})
    assert all(a in (0, 1, 2, 3) for a in table.committee(seed, 1, 2, 50))
    assert StakeTable(array("Q", balances)).committee(seed, 3, 1, 7) == StakeTable(
        balances
    ).committee(seed, 3, 1, 7)


def test_next_seed_and_coin_api() -> None:
    from echorand.core.bba import coin
    from echorand.protocol.seeds import next_seed

    q0 = bytes(32)
    assert next_seed(q0, 1, None) == hashlib.sha256(q0 + (1).to_bytes(8, "big")).digest()
    sig = bytes(range(64))
    assert next_seed(q0, 7, sig) == hashlib.sha256(sig + (7).to_bytes(8, "big")).digest()
    c = coin(q0, 3, 7)
    digest = hashlib.sha256(q0 + (3).to_bytes(8, "big") + (7).to_bytes(4, "big") + b"coin")
    assert c == digest.digest()[31] & 1


def test_verify_batch_api() -> None:
    from echorand.wire.crypto import verify_batch

    keys = [SigningKey(bytes([i]) * 32) for i in range(1, 5)]
    messages = [b"m%d" % i for i in range(4)]
    signatures = [k.sign(m).signature for k, m in zip(keys, messages, strict=True)]
    public_keys = [bytes(k.verify_key) for k in keys]
    assert verify_batch(public_keys, messages, signatures) == [True] * 4
    messages[2] = b"tampered"
    assert verify_batch(public_keys, messages, signatures) == [True, True, False, True]


def test_round_robin_order_api() -> None:
    from echorand.protocol.leader import round_robin_order

    order = round_robin_order(16, [0, 1, 2, 3, 4], 5)
    assert sorted(order) == list(range(5, 16))
    assert order[0] == 6
