"""This node's signed messages, kept in the ledger's `own` database (PROTOCOL §6): made durable
before any of them leaves the node, handed back to the core at start, so that after a crash
it re-sends them instead of signing others. The records and their keys are
`echorand.core.signed`'s; they are kept for the rounds whose undo records are kept.
"""

from __future__ import annotations

from collections.abc import Sequence

import lmdb

from echorand.core.signed import Signed, round_key, slot, slot_key
from echorand.ledger.store import LedgerError, Store

__all__ = ["prune", "read", "record"]


def record(store: Store, records: Sequence[Signed], tip: int) -> None:
    """Write `records` in one write transaction (the ledger is at round `tip`)."""
    if not records:
        return
    db = store.db["own"]

    def write(txn: lmdb.Transaction) -> None:
        for record in records:
            txn.put(slot_key(slot(record.message)), record.encode(), db=db)

    store.write(write, tip)


def read(store: Store) -> list[Signed]:
    """Every stored message this node signed, oldest round first."""
    out = []
    with store.begin() as txn:
        for key, raw in txn.cursor(db=store.db["own"]):
            try:
                out.append(Signed.decode(bytes(raw)))
            except ValueError as e:
                raise LedgerError(f"{store.path}: own record {bytes(key).hex()}: {e}") from None
    return out


def prune(txn: lmdb.Transaction, store: Store, round: int) -> None:
    """Delete, in the write transaction `txn`, the records of the rounds before `round`."""
    cursor = txn.cursor(db=store.db["own"])
    key = round_key(round)
    if cursor.first():
        while cursor.key() < key:
            if not cursor.delete():
                break
