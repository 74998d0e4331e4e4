"""The ledger: certified blocks and the accounts they make, on LMDB (docs/protocol.md §13).

One directory holds one LMDB environment with these named databases (keys
`u64be`):

| db         | key          | value                                                      |
|------------|--------------|------------------------------------------------------------|
| `meta`     | name         | `format`, `genesis`, `tip`, `accounts`, `level`, `minted`  |
| `blocks`   | round >= 1   | the block's encoding                                       |
| `certs`    | round >= 1   | its certificate's encoding                                 |
| `seeds`    | round >= 0   | Q[r] (Q[0] from the genesis)                               |
| `hashes`   | round >= 0   | the block hash (round 0: the genesis hash)                 |
| `accounts` | account id   | `pk 32 || balance u64be || nonce u64be || delegate u64be`  |
| `undo`     | round >= 1   | the old records of the accounts block r changed            |
| `own`      | slot         | this node's signed messages (`echorand.core.signed`)            |
| `levels`   | round >= 1   | `u64be(reward level) || u64be(minted)` after block r       |
| `finals`   | round >= 1   | the final certificate of block r, when this node has one   |

A block and everything it changes (block, certificate, seed, hash, accounts,
undo record, tip) commit in one write transaction: after a crash the ledger
is at its last committed block, with nothing lost or half-applied. The
in-memory state (`AccountState`, the two newest stake tables) changes only
after the commit succeeded.

The stake table of round r is the balances after block max(0, r - 2)
(PROTOCOL §3). One `StakeHistory` holds them all: the balances after the tip
in one Fenwick tree, updated in place at each block (O(changed accounts ·
log n)), and the changes of the last `undo_rounds` blocks, through which the
table after any of those blocks is read without a copy. Reopened, it is
rebuilt from the records and the undo records, which are kept for as many
blocks. The delegates of round r (docs/protocol.md §16) come from the same
snapshot: the current records for the tip, the kept changes (which hold old
delegates) for older blocks.

Block rewards (§16, `echorand.protocol.incentives`) are minted in the block's write
transaction: `meta.level` is R of the tip, `meta.minted` every unit minted
since the genesis, and the supply is always the genesis total plus `minted`.
"""

from __future__ import annotations

import fcntl
import os
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from types import TracebackType

import lmdb

from echorand._native import AccountState, Block, Certificate, Changes, StakeHistory
from echorand.core.signed import Signed, round_key, slot, slot_key
from echorand.ledger.genesis import SUPPLY_LIMIT, Genesis
from echorand.protocol.certificate import carried_problem
from echorand.protocol.finality import FinalCertificate
from echorand.protocol.incentives import (
    next_level,
    producer_reward,
    verifier_credits,
    verifier_pool,
)
from echorand.protocol.seeds import credential_size, next_seed
from echorand.protocol.sortition import StakeTable, stake_round
from echorand.wire.constants import KEY_SIZE
from echorand.wire.messages import MAX_SYNC_BLOCKS, NO_LEADER

__all__ = [
    "DEFAULT_MAP_SIZE",
    "DEFAULT_UNDO_ROUNDS",
    "LEDGER_FORMAT",
    "Account",
    "DiskFullError",
    "Ledger",
    "LedgerError",
]

LEDGER_FORMAT = 4
"""2: an account created by a transfer stores its registrar as its delegate (§13);
3: blocks carry CERT_{r-1}, and meta holds the reward level and the minted units (§16);
4: PROTOCOL revision 2 (signatures bound to the genesis hash, certificate votes that sign
their step, the empty value H(B_ε)), and the node's own votes (`own`)."""
DEFAULT_MAP_SIZE = 1 << 36
"""64 GiB of address space; the file grows as it fills (and the map doubles when full)."""
DEFAULT_UNDO_ROUNDS = 64
"""Undo records kept: the stake tables of the last this many rounds can be rebuilt."""

_STAKE_TABLES = 3
"""Stake snapshots the next round needs: after the tip and the two blocks before it (a
rollback keeps the undo records of as many blocks before its new tip)."""
_DBS = (
    b"meta",
    b"blocks",
    b"certs",
    b"seeds",
    b"hashes",
    b"accounts",
    b"undo",
    b"own",
    b"levels",
    b"finals",
)
_PER_ROUND = ("blocks", "certs", "seeds", "hashes", "undo", "levels")
"""The databases with one entry per block (round >= 1; seeds and hashes from 0)."""
_PUT_CHUNK = 100_000
_UNDO_ENTRY = 32
"""One entry of an undo record: `id || old balance || old nonce || old delegate`, u64be."""
_FULL_BELOW = 1 << 20
"""Free bytes below which a failed write is put down to a full disk."""
_READ_CHUNK = 65_536
"""Account records joined at a time when reading them all (3.5 MB)."""
_EMPTY_KIND = 0x01
"""The first byte of the empty block's encoding (§6)."""
_PRODUCER_AT = 1 + 8 + 32
"""Where a proposed block's producer sits in its encoding: after kind, round, prev_hash."""


class LedgerError(Exception):
    """A block that does not extend the ledger, or a store that does not match its genesis."""


class DiskFullError(LedgerError):
    """The disk had no room for a write transaction: nothing of it was written (LMDB aborts
    it whole), and the ledger stays at its tip. A node stops on it; it may be reopened, and
    written to again, once there is room."""


@dataclass(frozen=True, slots=True)
class Account:
    """One account as the ledger holds it."""

    id: int
    public_key: bytes
    balance: int
    nonce: int
    """Transactions the account has sent: the nonce of its next one."""
    delegate: int | None
    """Its last delegation's account, else its registrar (None: genesis, or self-delegated)."""


def _u64(n: int) -> bytes:
    return n.to_bytes(8, "big")


def _int(b: bytes) -> int:
    return int.from_bytes(b, "big")


class Ledger:
    """Certified blocks, seeds and accounts of one chain, in one LMDB directory.

    `Ledger.open(path, genesis)` (or `Ledger(path, genesis)`); one process at a
    time (a lock file refuses a second). Not thread-safe: one thread applies
    blocks.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        genesis: Genesis,
        *,
        durable: bool = True,
        map_size: int = DEFAULT_MAP_SIZE,
        undo_rounds: int = DEFAULT_UNDO_ROUNDS,
    ) -> None:
        """Open the ledger at `path`, creating it from `genesis` when it is new.

        A ledger made from another genesis is refused (`LedgerError`).
        `durable=False` skips the fsync at each commit: a process crash loses
        nothing, a power cut may lose the last blocks (never half of one).
        """
        if undo_rounds < 1:
            raise ValueError(f"undo_rounds must be at least 1, got {undo_rounds}")
        self._path = Path(path)
        self._genesis = genesis
        self._undo_rounds = undo_rounds
        self._tip = 0
        self._env: lmdb.Environment | None = None
        self._lock: int | None = _checked_lock(self._path, genesis)
        try:
            self._env = lmdb.open(
                str(self._path),
                map_size=map_size,
                max_dbs=len(_DBS),
                subdir=True,
                sync=durable,
                metasync=durable,
            )
            self._db = {name.decode(): self._env.open_db(name) for name in _DBS}
            with self._environment().begin() as txn:
                fresh = txn.get(b"genesis", db=self._db["meta"]) is None
            self._load(self._initialise() if fresh else None)
        except BaseException:
            self._close_files()
            raise

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        genesis: Genesis,
        *,
        durable: bool = True,
        map_size: int = DEFAULT_MAP_SIZE,
        undo_rounds: int = DEFAULT_UNDO_ROUNDS,
    ) -> Ledger:
        """`Ledger(path, genesis, ...)`."""
        return cls(path, genesis, durable=durable, map_size=map_size, undo_rounds=undo_rounds)

    # --- opening -------------------------------------------------------------------

    def _initialise(self) -> AccountState:
        """Write the genesis state (accounts, Q[0], the genesis hash as round 0's); the
        state written, which the ledger then holds instead of reading it back."""
        g = self._genesis
        state = g.account_state(check_keys=not g.keys_checked)
        meta = self._db["meta"]

        def write(txn: lmdb.Transaction) -> None:
            cursor = txn.cursor(db=self._db["accounts"])
            for start in range(0, len(state), _PUT_CHUNK):
                cursor.putmulti(state.items(start, _PUT_CHUNK), append=True)
            txn.put(_u64(0), g.seed, db=self._db["seeds"])
            txn.put(_u64(0), g.hash, db=self._db["hashes"])
            txn.put(b"format", LEDGER_FORMAT.to_bytes(4, "big"), db=meta)
            txn.put(b"tip", _u64(0), db=meta)
            txn.put(b"accounts", _u64(len(state)), db=meta)
            txn.put(b"level", _u64(next_level(g.params.rewards, 0, 0)), db=meta)
            txn.put(b"minted", _u64(0), db=meta)
            txn.put(b"final", _u64(0), db=meta)
            txn.put(b"genesis", g.hash, db=meta)

        self._write(write)
        return state

    def _load(self, state: AccountState | None = None) -> None:
        """The tip, the reward level, the accounts (`state` when the ledger was just
        created, else read from the store in chunks) and the stake snapshots."""
        meta = self._db["meta"]
        with self._environment().begin() as txn:
            stored = txn.get(b"genesis", db=meta)
            fmt = txn.get(b"format", db=meta)
            _check_meta(self._path, fmt, stored, self._genesis)
            self._tip = _int(txn.get(b"tip", db=meta))
            count = _int(txn.get(b"accounts", db=meta))
            self._level = _int(txn.get(b"level", db=meta))
            self._minted = _int(txn.get(b"minted", db=meta))
            self._final = _int(txn.get(b"final", db=meta))
            if state is None:
                state = self._read_accounts(txn, count)
            self._tip_hash = self._get(txn, "hashes", self._tip)
            self._tip_seed = self._get(txn, "seeds", self._tip)
            undos = self._kept_undos(txn)
        self._load_recent()
        if len(state) != count:
            raise LedgerError(f"{self._path}: {len(state)} account records, meta says {count}")
        self._state = state
        self._stakes = StakeHistory(state.balances(), self._tip, keep=self._undo_rounds)
        for undo in undos:
            try:
                self._stakes.recall(undo)
            except ValueError as e:
                block = self._stakes.oldest
                raise LedgerError(f"{self._path}: undo record of block {block}: {e}") from None

    def _kept_undos(self, txn: lmdb.Transaction) -> list[bytes]:
        """The undo records of the tip block and those before it, newest first: at most
        `undo_rounds`, down to the first one missing (rounds rolled back and not redone
        leave fewer)."""
        undos = []
        for r in range(self._tip, max(0, self._tip - self._undo_rounds), -1):
            undo = txn.get(_u64(r), db=self._db["undo"])
            if undo is None:
                break
            undos.append(bytes(undo))
        return undos

    def _read_accounts(self, txn: lmdb.Transaction, count: int) -> AccountState:
        """The account records, streamed to the native state `_READ_CHUNK` at a time."""
        values = txn.cursor(db=self._db["accounts"]).iternext(keys=False, values=True)
        chunks = iter(lambda: b"".join(islice(values, _READ_CHUNK)), b"")
        try:
            return AccountState.from_records(chunks, count)
        except ValueError as e:
            raise LedgerError(f"{self._path}: accounts: {e}") from None

    def _load_recent(self) -> None:
        """The tip block's producer, and which of the last `window` blocks were empty."""
        window = self._genesis.params.rewards.window
        first = max(1, self._tip - window + 1)
        self._recent: deque[bool] = deque(maxlen=window)
        self._tip_producer: int | None = None
        with self._environment().begin(buffers=True) as txn:
            for r in range(first, self._tip + 1):
                raw = txn.get(_u64(r), db=self._db["blocks"])
                if raw is None:
                    raise LedgerError(f"{self._path}: blocks has no entry for round {r}")
                self._recent.append(raw[0] == _EMPTY_KIND)
        if self._tip >= 1 and not self._recent[-1]:
            (self._tip_producer,) = self.recent_authors(1)

    def _environment(self) -> lmdb.Environment:
        if self._env is None:
            raise LedgerError(f"{self._path}: the ledger is closed")
        return self._env

    def _get(self, txn: lmdb.Transaction, db: str, round: int) -> bytes:
        value = txn.get(_u64(round), db=self._db[db])
        if value is None:
            raise LedgerError(f"{self._path}: {db} has no entry for round {round}")
        return bytes(value)

    # --- writing -------------------------------------------------------------------

    def _write(self, fn: Callable[[lmdb.Transaction], None]) -> None:
        """Run `fn(txn)` in one write transaction; grow the map and retry when full.

        A full disk aborts the transaction: `DiskFullError` (ENOSPC, or an I/O error on a
        file system with next to no room left)."""
        while True:
            try:
                with self._environment().begin(write=True) as txn:
                    fn(txn)
                return
            except lmdb.MapFullError:
                env = self._environment()
                env.set_mapsize(env.info()["map_size"] * 2)
            except lmdb.Error as e:
                if not isinstance(e, lmdb.DiskError) and not self._disk_nearly_full():
                    raise
                raise DiskFullError(
                    f"{self._path}: no room on the disk ({e}): nothing was written, the ledger"
                    f" stays at round {self._tip}"
                ) from None

    def _disk_nearly_full(self) -> bool:
        """Whether the ledger's file system has less than `_FULL_BELOW` bytes free. (LMDB
        reports a write cut short by a full disk as EIO, not ENOSPC.)"""
        try:
            stats = os.statvfs(self._path)
        except OSError:
            return False
        return stats.f_bavail * stats.f_frsize < _FULL_BELOW

    def apply(self, block: Block, certificate: Certificate) -> Changes:
        """Append the certified block of round tip + 1 and its changes, in one commit.

        Checks that the block extends the tip (round, prev_hash), that the
        certificate is for this round and this block, and the block's
        transactions against the state (all or nothing). The certificate's
        votes are not verified here: that needs the committee, which is the
        caller's (consensus or sync) job. `LedgerError` says what is wrong;
        nothing changes then.
        """
        r = self._tip + 1
        self._check_extends(block, certificate, r)
        self._check_carried(block, r)
        rewards = self._genesis.params.rewards
        level = next_level(rewards, self._level, sum(self._recent))
        try:
            changes = self._state.prepare(block, credits=self._credits(block, level))
        except ValueError as e:
            raise LedgerError(f"block {r}: {e}") from None
        minted = self._minted + changes.minted
        try:
            seed = next_seed(self._tip_seed, r, block.seed_sig)
        except ValueError as e:  # a VRF proof that does not decode (never one that verified)
            raise LedgerError(f"block {r}: seed: {e}") from None
        key = _u64(r)
        db = self._db
        records = changes.records()
        old_undo = r - self._undo_rounds

        def write(txn: lmdb.Transaction) -> None:
            txn.put(key, block.encode(), db=db["blocks"], append=True)
            txn.put(key, certificate.encode(), db=db["certs"], append=True)
            txn.put(key, seed, db=db["seeds"], append=True)
            txn.put(key, block.hash, db=db["hashes"], append=True)
            txn.put(key, changes.undo, db=db["undo"], append=True)
            txn.put(key, _u64(level) + _u64(minted), db=db["levels"], append=True)
            if old_undo >= 1:
                txn.delete(_u64(old_undo), db=db["undo"])
                _delete_below(txn.cursor(db=db["own"]), round_key(old_undo + 1))
            if records:
                txn.cursor(db=db["accounts"]).putmulti(records)
            txn.put(b"tip", key, db=db["meta"])
            txn.put(b"accounts", _u64(changes.accounts_after), db=db["meta"])
            txn.put(b"level", _u64(level), db=db["meta"])
            txn.put(b"minted", _u64(minted), db=db["meta"])

        self._write(write)
        # Committed: now the memory follows.
        self._state.commit(changes)
        self._stakes.push(changes)
        self._tip, self._tip_hash, self._tip_seed = r, block.hash, seed
        self._tip_producer = block.producer
        self._recent.append(block.is_empty)
        self._level, self._minted = level, minted
        return changes

    def _check_carried(self, block: Block, r: int) -> None:
        """A proposed block after a proposed block carries CERT_{r-1} for it (§16), and no
        other block carries one. Its votes are not verified here (see `apply`)."""
        producer = self._tip_producer
        prev_value = None if producer is None else (self._tip_hash, producer)
        problem = carried_problem(block, r, prev_value)
        if problem is not None:
            raise LedgerError(f"block {r}: {problem}")

    def _credits(self, block: Block, level: int) -> list[tuple[int, int]]:
        """The rewards block r mints (§16): R_r for its producer's share, and the pool of
        block r - 1 (at R_{r-1}) for the verifiers of the certificate it carries. Nothing
        when minting them would take the supply to 2^63."""
        rewards = self._genesis.params.rewards
        if block.is_empty or not rewards.enabled:
            return []
        assert block.producer is not None
        credits = [(block.producer, producer_reward(rewards, level))]
        cert = block.prev_cert
        if cert is not None:
            seats = self.committee_weights(cert.round, cert.step)
            credits += verifier_credits(verifier_pool(rewards, self._level), cert, seats)
        if self._state.total + sum(units for _, units in credits) >= SUPPLY_LIMIT:
            return []
        return [(account, units) for account, units in credits if units > 0]

    def committee_weights(self, round: int, step: int) -> dict[int, int]:
        """Seats per account in A_step of `round` (step >= 2), from the ledger's sortition:
        rounds from tip + 2 back as far as `stake_table` reaches."""
        seed = self.seed(round - 1)
        if seed is None:
            raise LedgerError(f"round {round}: no seed Q[{round - 1}] (the tip is {self._tip})")
        params = self._genesis.params
        return self.stake_table(round).weights(seed, round, params.committee_step(step), params.n_c)

    def _check_extends(self, block: Block, certificate: Certificate, r: int) -> None:
        if not isinstance(block, Block):
            raise TypeError(f"block must be a Block, not {type(block).__name__}")
        if not isinstance(certificate, Certificate):
            raise TypeError(f"certificate must be a Certificate, not {type(certificate).__name__}")
        if block.round != r:
            raise LedgerError(f"block of round {block.round}: the ledger's next round is {r}")
        if block.prev_hash != self._tip_hash:
            raise LedgerError(
                f"block {r}: prev_hash {block.prev_hash.hex()} is not the hash of block"
                f" {r - 1} ({self._tip_hash.hex()})"
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
            self._check_seed_kind(block, r)

    def _check_seed_kind(self, block: Block, r: int) -> None:
        """A proposed block's seed credential is of the genesis's `seed_mode` (the seed chain
        takes Q[r] from it; its proof is verified by whoever checked the certificate)."""
        mode = self._genesis.params.seed_mode
        credential = block.seed_sig
        assert credential is not None
        if len(credential) != credential_size(mode):
            raise LedgerError(
                f"block {r}: a {len(credential)}-byte seed credential; the genesis's seed mode"
                f" {mode!r} needs {credential_size(mode)} bytes"
            )

    # --- final blocks and rollback (PROTOCOL §6) -----------------------------------

    @property
    def final_round(self) -> int:
        """The last final block (0: the genesis): it and every block before it are final,
        never rolled back; later blocks are tentative."""
        return self._final

    @property
    def rollback_floor(self) -> int:
        """The earliest round `rollback` can go back to: the last final block, or as far as
        the undo records let the stake tables be rebuilt."""
        return max(self._final, self._tip - self._undo_rounds + _STAKE_TABLES - 1, 0)

    def is_final(self, round: int) -> bool:
        return 0 <= round <= self._final

    def record_final(self, cert: FinalCertificate) -> None:
        """Keep the proof that block `cert.round` is final (the caller checked it), and move
        the final round up to it. The block must be the one held at that round."""
        held = self.hash(cert.round)
        if held is None or held != cert.block_hash:
            raise LedgerError(
                f"final certificate of round {cert.round} is for {cert.block_hash.hex()},"
                f" not the block held there ({'none' if held is None else held.hex()})"
            )
        final = max(self._final, cert.round)
        db = self._db

        def write(txn: lmdb.Transaction) -> None:
            txn.put(_u64(cert.round), cert.encode(), db=db["finals"])
            txn.put(b"final", _u64(final), db=db["meta"])

        self._write(write)
        self._final = final

    def final_certificate(self, round: int) -> FinalCertificate | None:
        """The stored proof that block `round` is final, if this node has it."""
        raw = self._read("finals", round) if round >= 1 else None
        return None if raw is None else FinalCertificate.decode(raw)

    def rollback(self, to: int) -> list[Block]:
        """Remove the tentative blocks after round `to`, in one write transaction: the account
        records (balances, nonces, delegates, created accounts), the stake snapshots, the
        reward level and the minted units return to what they were after block `to`. Never
        past the last final block, nor further back than the undo records reach
        (`LedgerError`). Returns the removed blocks, oldest first."""
        tip = self._tip
        if not self._final <= to <= tip:
            raise LedgerError(
                f"rollback to round {to}: allowed from the last final block ({self._final})"
                f" to the tip ({tip})"
            )
        reach = tip - self._undo_rounds + _STAKE_TABLES - 1
        if to < reach:
            raise LedgerError(
                f"rollback to round {to}: the undo records reach back to {reach} (the stake"
                " tables after the new tip are rebuilt from them)"
            )
        removed = [self.block(r) for r in range(to + 1, tip + 1)]
        db, meta = self._db, self._db["meta"]

        def write(txn: lmdb.Transaction) -> None:
            accounts = txn.cursor(db=db["accounts"])
            count = None
            for r in range(tip, to, -1):
                undo = txn.get(_u64(r), db=db["undo"])
                if undo is None:
                    raise LedgerError(f"rollback: the undo record of block {r} is gone")
                count = _undo_block(txn, accounts, db["accounts"], bytes(undo))
            for name in _PER_ROUND:
                for r in range(tip, to, -1):
                    txn.delete(_u64(r), db=db[name])
            if to >= 1:
                level_minted = bytes(txn.get(_u64(to), db=db["levels"]))
                level, minted = _int(level_minted[:8]), _int(level_minted[8:])
            else:
                level, minted = next_level(self._genesis.params.rewards, 0, 0), 0
            txn.put(b"tip", _u64(to), db=meta)
            if count is not None:
                txn.put(b"accounts", _u64(count), db=meta)
            txn.put(b"level", _u64(level), db=meta)
            txn.put(b"minted", _u64(minted), db=meta)

        self._write(write)
        self._load()
        return [b for b in removed if b is not None]

    # --- this node's signatures (PROTOCOL §6) -------------------------------------

    def record_signed(self, records: Sequence[Signed]) -> None:
        """Make the messages this node is about to send durable, in one write transaction,
        before any of them leaves the node: after a crash it re-sends them instead of
        signing others (`echorand.core.signed`). Kept for the last `undo_rounds` rounds."""
        if not records:
            return
        db = self._db["own"]

        def write(txn: lmdb.Transaction) -> None:
            for record in records:
                txn.put(slot_key(slot(record.message)), record.encode(), db=db)

        self._write(write)

    def signed_records(self) -> list[Signed]:
        """Every stored message this node signed, oldest round first."""
        out = []
        with self._environment().begin() as txn:
            for key, raw in txn.cursor(db=self._db["own"]):
                try:
                    out.append(Signed.decode(bytes(raw)))
                except ValueError as e:
                    raise LedgerError(f"{self._path}: own record {bytes(key).hex()}: {e}") from None
        return out

    # --- reading -------------------------------------------------------------------

    @property
    def path(self) -> Path:
        return self._path

    @property
    def genesis(self) -> Genesis:
        return self._genesis

    @property
    def tip(self) -> int:
        """The round of the last committed block (0: the genesis only)."""
        return self._tip

    @property
    def tip_hash(self) -> bytes:
        """The hash of the last block: the `prev_hash` of the next one."""
        return self._tip_hash

    @property
    def tip_seed(self) -> bytes:
        """Q[tip]: the seed of the next round's sortition."""
        return self._tip_seed

    @property
    def reward_level(self) -> int:
        """R of the tip (§16): the level the next block's verifier pool is paid at."""
        return self._level

    @property
    def minted(self) -> int:
        """Every unit the block rewards created since the genesis."""
        return self._minted

    @property
    def supply(self) -> int:
        """The sum of all balances: the genesis total plus `minted`."""
        return int(self._state.total)

    @property
    def state(self) -> AccountState:
        """The accounts after the tip (read it; only the ledger changes it)."""
        return self._state

    def _read(self, db: str, round: int) -> bytes | None:
        if not 0 <= round <= self._tip:
            return None
        with self._environment().begin() as txn:
            value = txn.get(_u64(round), db=self._db[db])
        return None if value is None else bytes(value)

    def hash(self, round: int) -> bytes | None:
        """The hash of block `round` (round 0: the genesis hash), None past the tip."""
        return self._read("hashes", round)

    def seed(self, round: int) -> bytes | None:
        """Q[round], None past the tip."""
        return self._read("seeds", round)

    def block(self, round: int) -> Block | None:
        raw = self._read("blocks", round) if round >= 1 else None
        return None if raw is None else Block.from_bytes(raw)

    def recent_authors(self, count: int, upto: int | None = None) -> tuple[int, ...]:
        """The producers of the last `count` non-empty blocks up to block `upto` (default the
        tip), oldest first (fewer near the genesis): the locked validators of the round-robin
        proposer policy (§14)."""
        authors: list[int] = []
        round = self._tip if upto is None else min(upto, self._tip)
        with self._environment().begin(buffers=True) as txn:
            cursor = txn.cursor(db=self._db["blocks"])
            if count > 0 and cursor.set_key(_u64(round)):
                for raw in cursor.iterprev(keys=False, values=True):
                    if raw[0] != _EMPTY_KIND:
                        authors.append(_int(bytes(raw[_PRODUCER_AT : _PRODUCER_AT + 8])))
                        if len(authors) == count:
                            break
        return tuple(reversed(authors))

    def certificate_to_carry(self) -> Certificate | None:
        """CERT_tip, which the next proposed block must carry (§16), if the tip is a
        proposed block; None after the empty block or the genesis."""
        return self.proposed_certificate(self._tip)

    def proposed_certificate(self, round: int) -> Certificate | None:
        """CERT_round if block `round` is a proposed block; None for the empty block, the
        genesis and rounds past the tip."""
        cert = self.certificate(round)
        return None if cert is None or cert.b == 1 else cert

    def certificate(self, round: int) -> Certificate | None:
        raw = self._read("certs", round) if round >= 1 else None
        return None if raw is None else Certificate.from_bytes(raw)

    def encoded_blocks(
        self, from_round: int, count: int, max_bytes: int | None = None
    ) -> list[tuple[bytes, bytes]]:
        """(block, certificate) encodings of rounds `from_round ..`, at most `count`
        and at most MAX_SYNC_BLOCKS, stopping at the tip, and (with `max_bytes`) before
        their total passes `max_bytes`, the first always included: one sync response."""
        start = max(1, from_round)
        stop = min(self._tip + 1, from_round + min(count, MAX_SYNC_BLOCKS))
        if start >= stop:
            return []
        out = []
        total = 0
        with self._environment().begin(buffers=True) as txn:
            blocks = txn.cursor(db=self._db["blocks"])
            certs = txn.cursor(db=self._db["certs"])
            blocks.set_key(_u64(start))
            certs.set_key(_u64(start))
            for _ in range(start, stop):
                block, cert = blocks.value(), certs.value()
                total += len(block) + len(cert)
                if out and max_bytes is not None and total > max_bytes:
                    break
                out.append((bytes(block), bytes(cert)))
                blocks.next()
                certs.next()
        return out

    def blocks_range(self, from_round: int, count: int) -> list[tuple[Block, Certificate]]:
        """Certified blocks of rounds `from_round ..` (see `encoded_blocks`), decoded."""
        return [
            (Block.from_bytes(b), Certificate.from_bytes(c))
            for b, c in self.encoded_blocks(from_round, count)
        ]

    def account(self, id: int) -> Account | None:
        """The account with this id after the tip, or None."""
        if not 0 <= id < len(self._state):
            return None
        balance, nonce, delegate = self._state.account(id)
        return Account(id, self._state.public_key(id), balance, nonce, delegate)

    def account_by_key(self, public_key: bytes) -> Account | None:
        if len(public_key) != KEY_SIZE:
            raise ValueError(f"public_key must be {KEY_SIZE} bytes, got {len(public_key)}")
        id = self._state.id_of(public_key)
        return None if id is None else self.account(id)

    def stake_table(self, round: int) -> StakeTable:
        """The stake table of `round`: the balances after block max(0, round - 2).

        Rounds up to tip + 2, back `undo_rounds` blocks (`LedgerError` beyond). The
        table reads the ledger's `StakeHistory` (no copy; read-only) and stays right
        as the tip moves on, while the ledger keeps that block's changes.
        """
        after = self._snapshot(round, "balances")
        return self._stakes.table(after)

    def delegate(self, round: int, account: int) -> int | None:
        """`account`'s delegate in the stake snapshot of `round` (the records after block
        max(0, round - 2), docs/protocol.md §16): the account named by its last delegation,
        else its registrar; None for none, or when the account does not exist then.

        Rounds up to tip + 2, back `undo_rounds` blocks like `stake_table`.
        """
        after = self._snapshot(round, "delegates")
        if not 0 <= account < len(self._state):
            return None
        current = self._state.account(account)[2]
        if after == self._tip:
            return current
        return self._stakes.delegate(after, account, current)

    def _snapshot(self, round: int, what: str) -> int:
        """The block whose records make the snapshot of `round`, if the ledger has it."""
        after = stake_round(round)
        if after > self._tip:
            raise LedgerError(
                f"round {round} needs the {what} after block {after}; the tip is {self._tip}"
            )
        if after < self._stakes.oldest:
            raise LedgerError(
                f"round {round}: the undo record of block {after + 1} is gone (kept for"
                f" {self._undo_rounds} blocks)"
            )
        return after

    def stored_records(self) -> bytes:
        """Every stored account record in id order, read from disk (for checks)."""
        with self._environment().begin() as txn:
            cursor = txn.cursor(db=self._db["accounts"])
            return b"".join(cursor.iternext(keys=False, values=True))

    def check_store(self) -> None:
        """Check that the disk holds exactly the tip's state: every per-round
        database ends at the tip, and the account records are the in-memory
        state. `LedgerError` names what differs. O(accounts): for tools and tests.
        """
        tip = self._tip
        expect = {name: tip for name in _PER_ROUND}
        with self._environment().begin() as txn:
            for name, last in expect.items():
                cursor = txn.cursor(db=self._db[name])
                found = _int(cursor.key()) if cursor.last() else 0
                if found != last:
                    raise LedgerError(f"{self._path}: {name} ends at round {found}, tip is {tip}")
            count = _int(txn.get(b"accounts", db=self._db["meta"]))
        if count != len(self._state):
            raise LedgerError(f"{self._path}: meta has {count} accounts, memory {len(self._state)}")
        if self.supply != self._genesis.total + self._minted:
            raise LedgerError(
                f"{self._path}: the balances sum to {self.supply}, but the genesis made"
                f" {self._genesis.total} and {self._minted} were minted"
            )
        if self.stored_records() != self._state.records():
            raise LedgerError(f"{self._path}: stored accounts differ from the state in memory")

    # --- closing -------------------------------------------------------------------

    def close(self) -> None:
        self._close_files()

    def _close_files(self) -> None:
        if self._env is not None:
            self._env.close()
            self._env = None
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def __enter__(self) -> Ledger:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Ledger({str(self._path)!r}, tip={self._tip}, accounts={len(self._state)})"


def _undo_block(txn: lmdb.Transaction, accounts: lmdb.Cursor, db: object, undo: bytes) -> int:
    """Restore the account records a block changed and remove those it created; the number
    of accounts before the block."""
    before = _int(undo[:8])
    for at in range(8, len(undo), _UNDO_ENTRY):
        entry = undo[at : at + _UNDO_ENTRY]
        id = entry[:8]
        record = txn.get(id, db=db)
        if record is None:
            raise LedgerError(f"rollback: account {_int(id)} has no record")
        txn.put(id, bytes(record[:KEY_SIZE]) + entry[8:], db=db)
    if accounts.set_range(_u64(before)):
        while accounts.delete():
            pass
    return before


def _delete_below(cursor: lmdb.Cursor, key: bytes) -> None:
    """Delete every entry whose key sorts before `key`."""
    if cursor.first():
        while cursor.key() < key:
            if not cursor.delete():
                break


_META_KEYS = (b"format", b"genesis", b"tip", b"accounts", b"level", b"minted", b"final")
_OUR_FILES = frozenset({"data.mdb", "lock.mdb", "ledger.lock"})


def _check_directory(path: Path, genesis: Genesis) -> None:
    """Refuse, before anything is written, a data directory that is not an empty place for
    a new ledger nor a sound ledger of `genesis`: a file, a non-empty directory without a
    ledger, an LMDB environment that does not open, is truncated, or lacks a database or a
    meta key, a ledger of another format or genesis. Read-only, without LMDB's lock file."""
    if path.exists() and not path.is_dir():
        raise LedgerError(f"{path}: not a directory")
    data = path / "data.mdb"
    if not data.exists():
        others = (
            sorted(p.name for p in path.iterdir() if p.name not in _OUR_FILES)
            if path.exists()
            else []
        )
        if others:
            raise LedgerError(
                f"{path}: holds no ledger (no data.mdb) but other files ({others[0]}, ...):"
                " not a data directory"
            )
        return
    size = data.stat().st_size
    try:
        env = lmdb.open(str(path), readonly=True, lock=False, max_dbs=len(_DBS), subdir=True)
    except lmdb.Error as e:
        raise LedgerError(f"{data}: not an LMDB environment that opens ({e})") from None
    try:
        need = (env.info()["last_pgno"] + 1) * env.stat()["psize"]
        if size < need:
            raise LedgerError(f"{data}: truncated: {size} bytes, its pages need {need}")
        dbs, absent = {}, []
        for name in _DBS:
            try:
                dbs[name] = env.open_db(name, create=False)
            except lmdb.NotFoundError:
                absent.append(name.decode())
        with env.begin() as txn:
            names = {bytes(key) for key in txn.cursor().iternext(keys=True, values=False)}
            entries = sum(txn.stat(db)["entries"] for db in dbs.values())
            meta = (
                {key: txn.get(key, db=dbs[b"meta"]) for key in _META_KEYS} if b"meta" in dbs else {}
            )
    except lmdb.Error as e:
        raise LedgerError(f"{data}: damaged ({e})") from None
    finally:
        env.close()
    if entries == 0 and names <= set(_DBS):
        return  # a creation that stopped before its first commit: start it again
    if absent:
        raise LedgerError(f"{path}: no {absent[0]!r} database: not an echorand ledger")
    missing = [key.decode() for key, value in meta.items() if value is None]
    if missing:
        raise LedgerError(f"{path}: meta has no {missing[0]!r} key: the ledger is damaged")
    _check_meta(path, meta[b"format"], meta[b"genesis"], genesis)


def _check_meta(path: Path, fmt: bytes | None, stored: bytes | None, genesis: Genesis) -> None:
    """The ledger's format and genesis are ours (LedgerError otherwise)."""
    if fmt is None or len(fmt) != 4 or _int(fmt) != LEDGER_FORMAT:
        found = "none" if fmt is None else _int(fmt)
        raise LedgerError(
            f"{path}: ledger format {found}, this node reads format {LEDGER_FORMAT}"
            " (PROTOCOL revision 2 changed every signature: a ledger of an older format"
            " cannot be upgraded; start from an empty data directory and sync)"
        )
    if stored != genesis.hash:
        raise LedgerError(
            f"{path}: the ledger was made from genesis {bytes(stored or b'').hex()},"
            f" not {genesis.hash.hex()} (another network's data directory?)"
        )


def _checked_lock(path: Path, genesis: Genesis) -> int:
    """The ledger's lock, taken on a directory `_check_directory` finds sound (a lock file
    this call made is removed again when it is not)."""
    if path.exists() and not path.is_dir():
        raise LedgerError(f"{path}: not a directory")
    path.mkdir(parents=True, exist_ok=True)
    lock_file = path / "ledger.lock"
    made = not lock_file.exists()
    fd = _lock(path)
    try:
        _check_directory(path, genesis)
    except BaseException:
        os.close(fd)
        if made:
            lock_file.unlink(missing_ok=True)
        raise
    return fd


def _lock(path: Path) -> int:
    """An exclusive lock on `path/ledger.lock`, held while the ledger is open."""
    fd = os.open(path / "ledger.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise LedgerError(f"{path}: the ledger is open in another process") from None
    return fd
