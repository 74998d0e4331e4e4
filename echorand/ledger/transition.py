"""The state transition (docs/protocol.md §13, §16): the genesis state written into a new
ledger, a certified block checked and applied, tentative blocks undone.

Applying block r takes two steps. `prepare` checks the block and its
certificate against the chain's head and the accounts, and works out all that
the block changes: the account records, the undo record of their old values,
Q[r], the reward level and the units minted (§16). Nothing is written and
nothing in memory changes until the `Transition` it returns commits, in one
write transaction: the block, its certificate, seed, hash, undo record and
reward level, the accounts, the tip. After a crash the ledger is at its last
committed block, with nothing lost or half-applied.

A rollback (`undo`) restores, in one write transaction, the account records
the undo records hold (balances, nonces, delegates; created accounts go), and
the reward level and minted units after the new tip; the undo records are kept
for as many blocks as the stake history.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import lmdb

from echorand._native import AccountState, Block, Certificate, Changes
from echorand.ledger import signed
from echorand.ledger.chain import Chain
from echorand.ledger.genesis import SUPPLY_LIMIT, Genesis
from echorand.ledger.store import LEDGER_FORMAT, PER_ROUND, LedgerError, Store, u64, uint
from echorand.protocol.certificate import carried_problem
from echorand.protocol.incentives import (
    next_level,
    producer_reward,
    verifier_credits,
    verifier_pool,
)
from echorand.protocol.params import Params, Rewards
from echorand.protocol.seeds import credential_size, next_seed
from echorand.wire.constants import KEY_SIZE
from echorand.wire.messages import NO_LEADER

__all__ = ["Transition", "check_rollback", "create", "prepare", "rollback_reach", "undo"]

_STAKE_TABLES = 3
"""Stake snapshots the next round needs: after the tip and the two blocks before it (a
rollback keeps the undo records of as many blocks before its new tip)."""
_PUT_CHUNK = 100_000
_UNDO_ENTRY = 32
"""One entry of an undo record: `id || old balance || old nonce || old delegate`, u64be."""

Weights = Callable[[int, int], dict[int, int]]
"""(round, step) -> seats per account in that committee."""


def create(store: Store, genesis: Genesis) -> AccountState:
    """Write the genesis state (accounts, Q[0], the genesis hash as round 0's) into a new
    store; the state written, which the ledger then holds instead of reading it back."""
    state = genesis.account_state(check_keys=not genesis.keys_checked)
    db = store.db
    meta = db["meta"]

    def write(txn: lmdb.Transaction) -> None:
        cursor = txn.cursor(db=db["accounts"])
        for start in range(0, len(state), _PUT_CHUNK):
            cursor.putmulti(state.items(start, _PUT_CHUNK), append=True)
        txn.put(u64(0), genesis.seed, db=db["seeds"])
        txn.put(u64(0), genesis.hash, db=db["hashes"])
        txn.put(b"format", LEDGER_FORMAT.to_bytes(4, "big"), db=meta)
        txn.put(b"tip", u64(0), db=meta)
        txn.put(b"accounts", u64(len(state)), db=meta)
        txn.put(b"level", u64(_first_level(genesis.params.rewards)), db=meta)
        txn.put(b"minted", u64(0), db=meta)
        txn.put(b"final", u64(0), db=meta)
        txn.put(b"genesis", genesis.hash, db=meta)

    store.write(write, 0)
    return state


def _first_level(rewards: Rewards) -> int:
    """R of the genesis (§16)."""
    return next_level(rewards, 0, 0)


# --- applying a block ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Transition:
    """What the certified block of round `round` makes of the ledger: checked, not written."""

    round: int
    block: Block
    certificate: Certificate
    changes: Changes
    records: list[tuple[bytes, bytes]]
    """The account records to write (`Changes.records`)."""
    seed: bytes
    """Q[round]."""
    level: int
    """R of block `round`."""
    minted: int
    """Every unit minted since the genesis, this block's included."""

    def commit(self, store: Store, keep: int) -> None:
        """Write all of it in one transaction; the undo record (and this node's signed
        messages) of the block `keep` rounds back go."""
        store.write(lambda txn: self._write(txn, store, keep), self.round - 1)

    def _write(self, txn: lmdb.Transaction, store: Store, keep: int) -> None:
        key, db = u64(self.round), store.db
        txn.put(key, self.block.encode(), db=db["blocks"], append=True)
        txn.put(key, self.certificate.encode(), db=db["certs"], append=True)
        txn.put(key, self.seed, db=db["seeds"], append=True)
        txn.put(key, self.block.hash, db=db["hashes"], append=True)
        txn.put(key, self.changes.undo, db=db["undo"], append=True)
        txn.put(key, u64(self.level) + u64(self.minted), db=db["levels"], append=True)
        old_undo = self.round - keep
        if old_undo >= 1:
            txn.delete(u64(old_undo), db=db["undo"])
            signed.prune(txn, store, old_undo + 1)
        if self.records:
            txn.cursor(db=db["accounts"]).putmulti(self.records)
        txn.put(b"tip", key, db=db["meta"])
        txn.put(b"accounts", u64(self.changes.accounts_after), db=db["meta"])
        txn.put(b"level", u64(self.level), db=db["meta"])
        txn.put(b"minted", u64(self.minted), db=db["meta"])


def prepare(
    block: Block,
    certificate: Certificate,
    chain: Chain,
    state: AccountState,
    params: Params,
    weights: Weights,
) -> Transition:
    """The transition of the certified block of round tip + 1 on `chain` and `state`.

    Checks that the block extends the tip (round, prev_hash), that the certificate is
    for this round and this block, and the block's transactions against the state
    (all or nothing). The certificate's votes are not verified here: that needs the
    committee, which is the caller's (consensus or sync) job. `LedgerError` says what
    is wrong. `weights` draws the committee of the certificate the block carries.
    """
    r = chain.tip + 1
    _check_extends(block, certificate, r, chain.tip_hash, params)
    _check_carried(block, r, chain)
    level = next_level(params.rewards, chain.level, sum(chain.recent))
    try:
        credits = _credits(block, level, chain.level, params.rewards, state, weights)
        changes = state.prepare(block, credits=credits)
    except ValueError as e:
        raise LedgerError(f"block {r}: {e}") from None
    try:
        seed = next_seed(chain.tip_seed, r, block.seed_sig)
    except ValueError as e:  # a VRF proof that does not decode (never one that verified)
        raise LedgerError(f"block {r}: seed: {e}") from None
    minted = chain.minted + changes.minted
    return Transition(r, block, certificate, changes, changes.records(), seed, level, minted)


def _check_extends(
    block: Block, certificate: Certificate, r: int, tip_hash: bytes, params: Params
) -> None:
    if not isinstance(block, Block):
        raise TypeError(f"block must be a Block, not {type(block).__name__}")
    if not isinstance(certificate, Certificate):
        raise TypeError(f"certificate must be a Certificate, not {type(certificate).__name__}")
    if block.round != r:
        raise LedgerError(f"block of round {block.round}: the ledger's next round is {r}")
    if block.prev_hash != tip_hash:
        raise LedgerError(
            f"block {r}: prev_hash {block.prev_hash.hex()} is not the hash of block"
            f" {r - 1} ({tip_hash.hex()})"
        )
    if certificate.round != r:
        raise LedgerError(f"block {r}: the certificate is for round {certificate.round}")
    if block.is_empty:
        if certificate.b != 1 or certificate.value != (block.hash, NO_LEADER):
            raise LedgerError(
                f"block {r}: the certificate is not for the empty block of this round"
            )
    elif certificate.b != 0 or certificate.value != (block.hash, block.producer):
        raise LedgerError(
            f"block {r}: the certificate is for value ({certificate.block_hash.hex()},"
            f" {certificate.leader}) with b={certificate.b}, not this block"
            f" ({block.hash.hex()}, {block.producer})"
        )
    else:
        _check_seed_kind(block, r, params.seed_mode)


def _check_seed_kind(block: Block, r: int, mode: str) -> None:
    """A proposed block's seed credential is of the genesis's `seed_mode` (the seed chain
    takes Q[r] from it; its proof is verified by whoever checked the certificate)."""
    credential = block.seed_sig
    assert credential is not None
    if len(credential) != credential_size(mode):
        raise LedgerError(
            f"block {r}: a {len(credential)}-byte seed credential; the genesis's seed mode"
            f" {mode!r} needs {credential_size(mode)} bytes"
        )


def _check_carried(block: Block, r: int, chain: Chain) -> None:
    """A proposed block after a proposed block carries CERT_{r-1} for it (§16), and no
    other block carries one. Its votes are not verified here (see `prepare`)."""
    producer = chain.tip_producer
    prev_value = None if producer is None else (chain.tip_hash, producer)
    problem = carried_problem(block, r, prev_value)
    if problem is not None:
        raise LedgerError(f"block {r}: {problem}")


def _credits(
    block: Block,
    level: int,
    prev_level: int,
    rewards: Rewards,
    state: AccountState,
    weights: Weights,
) -> list[tuple[int, int]]:
    """The rewards block r mints (§16): R_r (`level`) for its producer's share, and the pool
    of block r - 1 (at R_{r-1}, `prev_level`) for the verifiers of the certificate it
    carries. Nothing when minting them would take the supply to 2^63."""
    if block.is_empty or not rewards.enabled:
        return []
    assert block.producer is not None
    credits = [(block.producer, producer_reward(rewards, level))]
    cert = block.prev_cert
    if cert is not None:
        seats = weights(cert.round, cert.step)
        credits += verifier_credits(verifier_pool(rewards, prev_level), cert, seats)
    if state.total + sum(units for _, units in credits) >= SUPPLY_LIMIT:
        return []
    return [(account, units) for account, units in credits if units > 0]


# --- undoing blocks (PROTOCOL §6) ----------------------------------------------------


def rollback_reach(tip: int, keep: int) -> int:
    """The earliest round a rollback from `tip` can go back to while the undo records (kept
    for `keep` blocks) rebuild the stake tables after the new tip."""
    return tip - keep + _STAKE_TABLES - 1


def check_rollback(to: int, tip: int, final: int, keep: int) -> None:
    """A rollback to round `to` is allowed: never past the last final block `final`, nor
    further back than the undo records reach (`LedgerError`)."""
    if not final <= to <= tip:
        raise LedgerError(
            f"rollback to round {to}: allowed from the last final block ({final})"
            f" to the tip ({tip})"
        )
    reach = rollback_reach(tip, keep)
    if to < reach:
        raise LedgerError(
            f"rollback to round {to}: the undo records reach back to {reach} (the stake"
            " tables after the new tip are rebuilt from them)"
        )


def undo(store: Store, tip: int, to: int, rewards: Rewards) -> None:
    """Remove blocks `to + 1 .. tip` from the store, in one write transaction: the account
    records, the reward level and the minted units return to what they were after block
    `to` (`check_rollback` first)."""
    db, meta = store.db, store.db["meta"]

    def write(txn: lmdb.Transaction) -> None:
        accounts = txn.cursor(db=db["accounts"])
        count = None
        for r in range(tip, to, -1):
            undo = txn.get(u64(r), db=db["undo"])
            if undo is None:
                raise LedgerError(f"rollback: the undo record of block {r} is gone")
            count = _undo_block(txn, accounts, db["accounts"], bytes(undo))
        for name in PER_ROUND:
            for r in range(tip, to, -1):
                txn.delete(u64(r), db=db[name])
        if to >= 1:
            level_minted = bytes(txn.get(u64(to), db=db["levels"]))
            level, minted = uint(level_minted[:8]), uint(level_minted[8:])
        else:
            level, minted = _first_level(rewards), 0
        txn.put(b"tip", u64(to), db=meta)
        if count is not None:
            txn.put(b"accounts", u64(count), db=meta)
        txn.put(b"level", u64(level), db=meta)
        txn.put(b"minted", u64(minted), db=meta)

    store.write(write, tip)


def _undo_block(txn: lmdb.Transaction, accounts: lmdb.Cursor, db: object, undo: bytes) -> int:
    """Restore the account records a block changed and remove those it created; the number
    of accounts before the block."""
    before = uint(undo[:8])
    for at in range(8, len(undo), _UNDO_ENTRY):
        entry = undo[at : at + _UNDO_ENTRY]
        id = entry[:8]
        record = txn.get(id, db=db)
        if record is None:
            raise LedgerError(f"rollback: account {uint(id)} has no record")
        txn.put(id, bytes(record[:KEY_SIZE]) + entry[8:], db=db)
    if accounts.set_range(u64(before)):
        while accounts.delete():
            pass
    return before
