"""The ledger's LMDB environment: its databases, its format, its transactions (docs/protocol.md
§13).

One directory holds one LMDB environment with these named databases (keys
`u64be`):

| db         | key          | value                                                              |
|------------|--------------|--------------------------------------------------------------------|
| `meta`     | name         | `format`, `genesis`, `tip`, `accounts`, `level`, `minted`, `final` |
| `blocks`   | round >= 1   | the block's encoding                                               |
| `certs`    | round >= 1   | its certificate's encoding                                         |
| `seeds`    | round >= 0   | Q[r] (Q[0] from the genesis)                                       |
| `hashes`   | round >= 0   | the block hash (round 0: the genesis hash)                         |
| `accounts` | account id   | `pk 32 || balance u64be || nonce u64be || delegate u64be`          |
| `undo`     | round >= 1   | the old records of the accounts block r changed                    |
| `own`      | slot         | this node's signed messages (`echorand.core.signed`)               |
| `levels`   | round >= 1   | `u64be(reward level) || u64be(minted)` after block r               |
| `finals`   | round >= 1   | the final certificate of block r, when this node has one           |

Every change is one write transaction (`Store.write`): after a crash the store
is at its last commit, with nothing lost or half-written. A full map grows and
the transaction is run again; a full disk aborts it whole (`DiskFullError`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from itertools import islice
from pathlib import Path

import lmdb

from echorand._native import AccountState

__all__ = [
    "DBS",
    "DEFAULT_MAP_SIZE",
    "LEDGER_FORMAT",
    "META_KEYS",
    "PER_ROUND",
    "DiskFullError",
    "LedgerError",
    "Store",
    "complete_meta",
    "u64",
    "uint",
]

LEDGER_FORMAT = 4
"""2: an account created by a transfer stores its registrar as its delegate (§13);
3: blocks carry CERT_{r-1}, and meta holds the reward level and the minted units (§16);
4: PROTOCOL revision 2 (signatures bound to the genesis hash, certificate votes that sign
their step, the empty value H(B_ε)), and the node's own votes (`own`)."""
DEFAULT_MAP_SIZE = 1 << 36
"""64 GiB of address space; the file grows as it fills (and the map doubles when full)."""

DBS = (
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
PER_ROUND = ("blocks", "certs", "seeds", "hashes", "undo", "levels")
"""The databases with one entry per block (round >= 1; seeds and hashes from 0)."""
META_KEYS = (b"format", b"genesis", b"tip", b"accounts", b"level", b"minted", b"final")
_FULL_BELOW = 1 << 20
"""Free bytes below which a failed write is put down to a full disk."""
_READ_CHUNK = 65_536
"""Account records joined at a time when reading them all (3.5 MB)."""


class LedgerError(Exception):
    """A block that does not extend the ledger, or a store that does not match its genesis."""


class DiskFullError(LedgerError):
    """The disk had no room for a write transaction: nothing of it was written (LMDB aborts
    it whole), and the ledger stays at its tip. A node stops on it; it may be reopened, and
    written to again, once there is room."""


def u64(n: int) -> bytes:
    """`n` as a u64be key or value."""
    return n.to_bytes(8, "big")


def uint(b: bytes) -> int:
    """A big-endian unsigned integer."""
    return int.from_bytes(b, "big")


def complete_meta(path: Path, meta: dict[bytes, bytes | None]) -> dict[bytes, bytes]:
    """`meta`, read from the ledger at `path`, with every key (`LedgerError` naming the first
    one missing)."""
    missing = [key.decode() for key, value in meta.items() if value is None]
    if missing:
        raise LedgerError(f"{path}: meta has no {missing[0]!r} key: the ledger is damaged")
    return {key: bytes(value) for key, value in meta.items() if value is not None}


Txn = Callable[[lmdb.Transaction], None]
"""What a write transaction does."""


class Store:
    """The LMDB environment of one ledger directory and its named databases (`db`).

    It takes over the directory's lock (`echorand.ledger.directory.claim`) and releases it
    when it closes. Not thread-safe: one thread writes.
    """

    def __init__(self, path: Path, lock: int, *, durable: bool, map_size: int) -> None:
        """Open the environment at `path`, whose lock the caller holds as the descriptor `lock`.

        `durable=False` skips the fsync at each commit: a process crash loses nothing, a
        power cut may lose the last commits (never half of one).
        """
        self.path = path
        self._lock: int | None = lock
        self._env: lmdb.Environment | None = None
        try:
            self._env = lmdb.open(
                str(path),
                map_size=map_size,
                max_dbs=len(DBS),
                subdir=True,
                sync=durable,
                metasync=durable,
            )
            self.db = {name.decode(): self._env.open_db(name) for name in DBS}
        except BaseException:
            self.close()
            raise

    def _environment(self) -> lmdb.Environment:
        if self._env is None:
            raise LedgerError(f"{self.path}: the ledger is closed")
        return self._env

    # --- reading -------------------------------------------------------------------

    def begin(self, *, buffers: bool = False) -> lmdb.Transaction:
        """A read transaction (`buffers`: values as buffers valid inside it)."""
        return self._environment().begin(buffers=buffers)

    def fresh(self) -> bool:
        """Whether no genesis was written yet (a new ledger)."""
        with self.begin() as txn:
            return txn.get(b"genesis", db=self.db["meta"]) is None

    def meta(self) -> dict[bytes, bytes]:
        """The `meta` entries (`META_KEYS`), which must all be there (`LedgerError`)."""
        with self.begin() as txn:
            return complete_meta(
                self.path, {key: txn.get(key, db=self.db["meta"]) for key in META_KEYS}
            )

    def get(self, txn: lmdb.Transaction, db: str, round: int) -> bytes:
        """The entry of `round` in `db`, which must have one (`LedgerError`)."""
        value = txn.get(u64(round), db=self.db[db])
        if value is None:
            raise LedgerError(f"{self.path}: {db} has no entry for round {round}")
        return bytes(value)

    def read(self, db: str, round: int) -> bytes | None:
        """The entry of `round` in `db`, if any."""
        with self.begin() as txn:
            value = txn.get(u64(round), db=self.db[db])
        return None if value is None else bytes(value)

    def accounts(self, count: int) -> AccountState:
        """The `count` account records, streamed to the native state `_READ_CHUNK` at a time."""
        with self.begin() as txn:
            values = txn.cursor(db=self.db["accounts"]).iternext(keys=False, values=True)
            chunks = iter(lambda: b"".join(islice(values, _READ_CHUNK)), b"")
            try:
                return AccountState.from_records(chunks, count)
            except ValueError as e:
                raise LedgerError(f"{self.path}: accounts: {e}") from None

    def records(self) -> bytes:
        """Every stored account record in id order, read from disk (for checks)."""
        with self.begin() as txn:
            cursor = txn.cursor(db=self.db["accounts"])
            return b"".join(cursor.iternext(keys=False, values=True))

    def check(self, tip: int, state: AccountState, genesis_total: int, minted: int) -> None:
        """Check that the store holds exactly `state`, the accounts after block `tip`: every
        per-round database ends at `tip`, `meta` counts its accounts, the account records
        are its records, and its balances sum to `genesis_total + minted`. `LedgerError`
        names what differs. O(accounts): for tools and tests."""
        with self.begin() as txn:
            for name in PER_ROUND:
                cursor = txn.cursor(db=self.db[name])
                found = uint(cursor.key()) if cursor.last() else 0
                if found != tip:
                    raise LedgerError(f"{self.path}: {name} ends at round {found}, tip is {tip}")
            count = uint(txn.get(b"accounts", db=self.db["meta"]))
        if count != len(state):
            raise LedgerError(f"{self.path}: meta has {count} accounts, memory {len(state)}")
        if state.total != genesis_total + minted:
            raise LedgerError(
                f"{self.path}: the balances sum to {state.total}, but the genesis made"
                f" {genesis_total} and {minted} were minted"
            )
        if self.records() != state.records():
            raise LedgerError(f"{self.path}: stored accounts differ from the state in memory")

    # --- writing -------------------------------------------------------------------

    def write(self, fn: Txn, tip: int) -> None:
        """Run `fn(txn)` in one write transaction; grow the map and retry when full.

        A full disk aborts the transaction: `DiskFullError` (ENOSPC, or an I/O error on a
        file system with next to no room left), which says the ledger stays at round `tip`."""
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
                    f"{self.path}: no room on the disk ({e}): nothing was written, the ledger"
                    f" stays at round {tip}"
                ) from None

    def _disk_nearly_full(self) -> bool:
        """Whether the ledger's file system has less than `_FULL_BELOW` bytes free. (LMDB
        reports a write cut short by a full disk as EIO, not ENOSPC.)"""
        try:
            stats = os.statvfs(self.path)
        except OSError:
            return False
        return stats.f_bavail * stats.f_frsize < _FULL_BELOW

    # --- closing -------------------------------------------------------------------

    def close(self) -> None:
        """Close the environment and release the lock (again: nothing)."""
        if self._env is not None:
            self._env.close()
            self._env = None
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None
