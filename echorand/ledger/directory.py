"""The data directory: a ledger opens only an empty directory or a sound ledger of its own
genesis and format, and only in one process at a time (docs/protocol.md §13).

`claim(path, genesis)` checks the directory before anything is written to it, read-only and
without LMDB's lock file, and takes the ledger's lock (`path/ledger.lock`, an exclusive
`flock` held while the ledger is open). `check_meta` is the format and genesis check, which
the ledger repeats on the environment it opened.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import lmdb

from echorand.ledger.genesis import Genesis
from echorand.ledger.store import DBS, LEDGER_FORMAT, META_KEYS, LedgerError, complete_meta, uint

__all__ = ["check_meta", "claim"]

_OUR_FILES = frozenset({"data.mdb", "lock.mdb", "ledger.lock"})


def claim(path: Path, genesis: Genesis) -> int:
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
        env = lmdb.open(str(path), readonly=True, lock=False, max_dbs=len(DBS), subdir=True)
    except lmdb.Error as e:
        raise LedgerError(f"{data}: not an LMDB environment that opens ({e})") from None
    try:
        need = (env.info()["last_pgno"] + 1) * env.stat()["psize"]
        if size < need:
            raise LedgerError(f"{data}: truncated: {size} bytes, its pages need {need}")
        dbs, absent = {}, []
        for name in DBS:
            try:
                dbs[name] = env.open_db(name, create=False)
            except lmdb.NotFoundError:
                absent.append(name.decode())
        with env.begin() as txn:
            names = {bytes(key) for key in txn.cursor().iternext(keys=True, values=False)}
            entries = sum(txn.stat(db)["entries"] for db in dbs.values())
            meta = (
                {key: txn.get(key, db=dbs[b"meta"]) for key in META_KEYS} if b"meta" in dbs else {}
            )
    except lmdb.Error as e:
        raise LedgerError(f"{data}: damaged ({e})") from None
    finally:
        env.close()
    if entries == 0 and names <= set(DBS):
        return  # a creation that stopped before its first commit: start it again
    if absent:
        raise LedgerError(f"{path}: no {absent[0]!r} database: not an echorand ledger")
    check_meta(path, complete_meta(path, meta), genesis)


def check_meta(path: Path, meta: dict[bytes, bytes], genesis: Genesis) -> None:
    """The format and genesis in the ledger's `meta` are ours (LedgerError otherwise)."""
    fmt, stored = meta[b"format"], meta[b"genesis"]
    if len(fmt) != 4 or uint(fmt) != LEDGER_FORMAT:
        raise LedgerError(
            f"{path}: ledger format {uint(fmt)}, this node reads format {LEDGER_FORMAT}"
            " (PROTOCOL revision 2 changed every signature: a ledger of an older format"
            " cannot be upgraded; start from an empty data directory and sync)"
        )
    if stored != genesis.hash:
        raise LedgerError(
            f"{path}: the ledger was made from genesis {stored.hex()},"
            f" not {genesis.hash.hex()} (another network's data directory?)"
        )
