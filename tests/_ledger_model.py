"""A slow, plain-Python model of the account state and the transaction rules.

Written from docs/protocol.md §13, one dict and one list, to check the native
`AccountState` against. Key validity comes from `echorand.wire.crypto` (the
ed25519 module), not from the state's own check.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass

from echorand.wire import transactions as T
from echorand.wire.crypto import is_valid_account_key
from echorand.wire.messages import Transaction

NO_DELEGATE = (1 << 64) - 1


@dataclass
class ModelAccount:
    key: bytes
    balance: int
    nonce: int = 0
    delegate: int | None = None


class Model:
    def __init__(self, genesis: Iterable[tuple[bytes, int]]) -> None:
        self.accounts = [ModelAccount(k, b) for k, b in genesis]
        self.index = {a.key: i for i, a in enumerate(self.accounts)}
        assert len(self.index) == len(self.accounts)

    def copy(self) -> Model:
        return copy.deepcopy(self)

    def step(self, tx: Transaction) -> tuple[str | None, int]:
        """Apply one transaction; (reason, fee collected). Nothing changes when refused."""
        if tx.kind not in (0, 1):
            return T.UNKNOWN_KIND, 0
        if tx.kind == 1 and tx.amount != 0:
            return T.DELEGATION_AMOUNT, 0
        sender = self.index.get(tx.sender)
        if sender is None:
            return T.UNKNOWN_SENDER, 0
        a = self.accounts[sender]
        if tx.nonce < a.nonce:
            return T.NONCE_TOO_LOW, 0
        if tx.nonce > a.nonce:
            return T.NONCE_TOO_HIGH, 0
        if tx.kind == 1:
            delegate = self.index.get(tx.recipient)
            if delegate is None:
                return T.UNKNOWN_DELEGATE, 0
            if a.balance < tx.fee:
                return T.INSUFFICIENT_BALANCE, 0
            a.balance -= tx.fee
            a.nonce += 1
            a.delegate = None if delegate == sender else delegate
            return None, tx.fee
        if tx.amount == 0:
            return T.ZERO_AMOUNT, 0
        if tx.recipient == tx.sender:
            return T.SELF_TRANSFER, 0
        if a.balance < tx.amount + tx.fee:
            return T.INSUFFICIENT_BALANCE, 0
        to = self.index.get(tx.recipient)
        if to is None:
            if not is_valid_account_key(tx.recipient):
                return T.BAD_RECIPIENT_KEY, 0
            to = len(self.accounts)
            # The sender is its registrar: the default delegate (§13, §16).
            self.accounts.append(ModelAccount(tx.recipient, 0, delegate=sender))
            self.index[tx.recipient] = to
        a.balance -= tx.amount + tx.fee
        a.nonce += 1
        self.accounts[to].balance += tx.amount
        return None, tx.fee

    def check(
        self, txs: Iterable[Transaction], pending: Iterable[Transaction] = ()
    ) -> list[str | None]:
        scratch = self.copy()
        for tx in pending:
            scratch.step(tx)
        return [scratch.step(tx)[0] for tx in txs]

    def apply(self, txs: Iterable[Transaction], producer: int | None) -> None:
        """All or nothing: ValueError("transaction i: reason") and no change on failure."""
        scratch = self.copy()
        fees = 0
        count = 0
        for i, tx in enumerate(txs):
            reason, fee = scratch.step(tx)
            if reason is not None:
                raise ValueError(f"transaction {i}: {reason}")
            fees += fee
            count += 1
        if producer is not None and producer >= len(self.accounts):
            raise ValueError(f"producer {producer} has no account")
        if count:
            assert producer is not None
            scratch.accounts[producer].balance += fees
        self.accounts, self.index = scratch.accounts, scratch.index

    def balances(self) -> list[int]:
        return [a.balance for a in self.accounts]

    def delegates(self) -> list[int | None]:
        return [a.delegate for a in self.accounts]

    def records(self) -> bytes:
        out = bytearray()
        for a in self.accounts:
            delegate = NO_DELEGATE if a.delegate is None else a.delegate
            out += a.key
            for v in (a.balance, a.nonce, delegate):
                out += v.to_bytes(8, "big")
        return bytes(out)


def genesis_entries(keys: list[bytes], balances: list[int]) -> bytes:
    return b"".join(k + b.to_bytes(8, "big") for k, b in zip(keys, balances, strict=True))
