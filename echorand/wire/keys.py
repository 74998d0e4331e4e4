"""Key files: one key pair (`echorand keys`: `echorand.tools.keys`), and the account keys a node
runs.

A key pair file is JSON, readable by its owner only (mode 0600):

    {"format": 1, "type": "ed25519", "public_key": "<hex>", "seed": "<hex>"}

A node's key file (`keys/node-<i>.keys` of a devnet) is binary:

    magic "ERKEYS01" || genesis_hash 32 || node u32be || nodes u32be || count u64be
    || (account_id u64be || seed 32) * count          (ids strictly ascending)

Either file may be sealed with a passphrase (`echorand.wire.seal`: Argon2id and SecretBox;
`echorand keys --encrypt`): its bytes are then `ERSEAL01...`, and reading it asks the
`passphrase` callable given to the loader. Plaintext files stay readable (devnets).

Errors (`KeyFileError`, a `ValueError`) name the file and the field.
"""

from __future__ import annotations

import json
import operator
import os
import sys
from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

from echorand._native import derive_public_keys
from echorand.wire.columns import column, interleave
from echorand.wire.constants import HASH_SIZE, KEY_SIZE
from echorand.wire.crypto import SEED_SIZE, Keypair
from echorand.wire.seal import (
    DEFAULT_STRENGTH,
    SEAL_MAGIC,
    Passphrase,
    PassphraseError,
    SealError,
    is_sealed,
    seal,
    unseal,
)

__all__ = [
    "KEYPAIR_FORMAT",
    "NODE_KEYS_MAGIC",
    "KeyFileError",
    "LocalKeys",
    "NodeKeys",
    "is_sealed_file",
    "load_keypair",
    "load_node_keys",
    "read_key_file",
    "write_keypair",
    "write_node_keys",
]

KEYPAIR_FORMAT = 1
NODE_KEYS_MAGIC = b"ERKEYS01"
_NODE_HEADER = len(NODE_KEYS_MAGIC) + HASH_SIZE + 4 + 4 + 8
_NODE_ENTRY = 8 + SEED_SIZE


class KeyFileError(ValueError):
    """A key file that cannot be used; the text names the file and the field."""


def write_secret(path: Path, data: bytes, *, overwrite: bool = False) -> None:
    """Write `data` to a new file readable by its owner only (atomically when overwriting)."""
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path}: exists (refusing to overwrite a key file)")
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_key_file(
    path: str | os.PathLike[str],
    data: bytes,
    *,
    overwrite: bool = False,
    passphrase: bytes | None = None,
    strength: str = DEFAULT_STRENGTH,
) -> None:
    """Write a key file (mode 0600), sealed when a passphrase is given."""
    if passphrase is not None:
        data = seal(data, passphrase, strength)
    write_secret(Path(path), data, overwrite=overwrite)


def is_sealed_file(path: str | os.PathLike[str]) -> bool:
    """Whether the file starts as a sealed one does (False when it cannot be read)."""
    try:
        with open(path, "rb") as f:
            return is_sealed(f.read(len(SEAL_MAGIC)))
    except OSError:
        return False


def read_key_file(
    path: str | os.PathLike[str], passphrase: Passphrase | None = None
) -> tuple[bytes, bool]:
    """(the key file's plaintext, whether it was sealed); KeyFileError naming the file."""
    where = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise KeyFileError(f"{where}: cannot read: {e.strerror}") from None
    if not is_sealed(data):
        return data, False
    if passphrase is None:
        raise KeyFileError(f"{where}: sealed with a passphrase, and none was given")
    try:
        return unseal(data, passphrase(), where), True
    except (SealError, PassphraseError) as e:
        raise KeyFileError(str(e) if isinstance(e, SealError) else f"{where}: {e}") from None


def write_keypair(
    path: str | os.PathLike[str],
    keypair: Keypair,
    *,
    overwrite: bool = False,
    passphrase: bytes | None = None,
    strength: str = DEFAULT_STRENGTH,
) -> None:
    """Save a key pair as a JSON key file (mode 0600; sealed when given a passphrase)."""
    doc = {
        "format": KEYPAIR_FORMAT,
        "type": "ed25519",
        "public_key": keypair.public_key.hex(),
        "seed": keypair.seed.hex(),
    }
    data = (json.dumps(doc, indent=2) + "\n").encode()
    write_key_file(path, data, overwrite=overwrite, passphrase=passphrase, strength=strength)


def _hex_field(doc: dict[str, object], name: str, size: int, where: str) -> bytes:
    value = doc.get(name)
    if not isinstance(value, str):
        raise KeyFileError(f"{where}: {name}: missing or not a string")
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise KeyFileError(f"{where}: {name}: not hex") from None
    if len(raw) != size:
        raise KeyFileError(f"{where}: {name}: must be {size} bytes, got {len(raw)}")
    return raw


def load_keypair(path: str | os.PathLike[str], *, passphrase: Passphrase | None = None) -> Keypair:
    """The key pair of a JSON key file, checked (the public key must match the seed)."""
    where = str(path)
    data, _ = read_key_file(path, passphrase)
    try:
        doc = json.loads(data)
    except ValueError as e:
        raise KeyFileError(f"{where}: not JSON: {e}") from None
    if not isinstance(doc, dict):
        raise KeyFileError(f"{where}: not a JSON object")
    if doc.get("format") != KEYPAIR_FORMAT:
        raise KeyFileError(f"{where}: format: expected {KEYPAIR_FORMAT}, got {doc.get('format')!r}")
    if doc.get("type") != "ed25519":
        raise KeyFileError(f"{where}: type: expected 'ed25519', got {doc.get('type')!r}")
    unknown = set(doc) - {"format", "type", "public_key", "seed"}
    if unknown:
        raise KeyFileError(f"{where}: unknown field {sorted(unknown)[0]!r}")
    seed = _hex_field(doc, "seed", SEED_SIZE, where)
    public_key = _hex_field(doc, "public_key", KEY_SIZE, where)
    keypair = Keypair.from_seed(seed)
    if keypair.public_key != public_key:
        raise KeyFileError(f"{where}: public_key: does not belong to the seed")
    return keypair


@dataclass(frozen=True, slots=True)
class NodeKeys:
    """The accounts one devnet node runs: their ids and secret seeds."""

    genesis_hash: bytes
    node: int
    nodes: int
    ids: Sequence[int] = field(repr=False)
    """Strictly ascending: a tuple, a range or an `array('Q')` (a loaded file gives a range
    when its ids are one, else an array: no Python object per account)."""
    seeds: bytes = field(repr=False)
    """count * 32 bytes, the seed of `ids[i]` at `32 * i`."""

    def __post_init__(self) -> None:
        if len(self.genesis_hash) != HASH_SIZE:
            raise ValueError(f"genesis_hash must be {HASH_SIZE} bytes")
        if not 0 <= self.node < self.nodes < 2**32:
            raise ValueError(f"node must be in [0, nodes): node={self.node}, nodes={self.nodes}")
        if len(self.seeds) != SEED_SIZE * len(self.ids):
            raise ValueError(f"seeds must be {SEED_SIZE} bytes per id")
        if not all(map(operator.lt, self.ids, islice(self.ids, 1, None))):
            raise ValueError("ids must be strictly ascending")

    def __len__(self) -> int:
        return len(self.ids)

    def public_keys(self) -> bytes:
        """The public key of each account, concatenated (derived natively)."""
        return derive_public_keys(self.seeds)

    def keypair(self, index: int) -> Keypair:
        """The key pair of `ids[index]`."""
        return Keypair.from_seed(self.seeds[SEED_SIZE * index : SEED_SIZE * (index + 1)])

    def keypairs(self) -> Iterator[tuple[int, Keypair]]:
        """(account id, key pair) of every account, in id order."""
        for i, account in enumerate(self.ids):
            yield account, self.keypair(i)

    def index(self, account: int) -> int | None:
        """Where `account` is in `ids` (O(1) for a range, else a binary search), None if it
        is not."""
        ids = self.ids
        if isinstance(ids, range):
            return ids.index(account) if account in ids else None
        i = bisect_left(ids, account)
        return i if i < len(ids) and ids[i] == account else None

    def encode(self) -> bytes:
        """The file's bytes (see the module docs)."""
        entries = bytearray(_NODE_ENTRY * len(self.ids))
        ids = _u64be(self.ids)
        interleave(entries, _NODE_ENTRY, [(0, 8, ids), (8, SEED_SIZE, self.seeds)])
        header = (
            NODE_KEYS_MAGIC
            + self.genesis_hash
            + self.node.to_bytes(4, "big")
            + self.nodes.to_bytes(4, "big")
            + len(self.ids).to_bytes(8, "big")
        )
        return header + bytes(entries)


class LocalKeys(Mapping[int, Keypair]):
    """A node's key pairs by account id: those of its node key file, each made (and checked
    against `public_key(account)`, the genesis key) when first used, and `extra` ones.

    Opening costs nothing per account: a node that runs a million accounts signs with the
    few its committees draw. A seed that does not give the genesis key raises
    `KeyFileError` at that account's first use."""

    def __init__(
        self,
        node_keys: NodeKeys | None,
        public_key: Callable[[int], bytes],
        extra: Mapping[int, Keypair] | None = None,
        *,
        where: str = "node keys",
    ) -> None:
        self._node_keys = node_keys
        self._ids: Sequence[int] = range(0) if node_keys is None else node_keys.ids
        self._range = isinstance(self._ids, range)
        self._public_key = public_key
        self._extra = dict(extra or {})
        self._made: dict[int, Keypair] = {}
        self._where = where

    def _index(self, account: object) -> int | None:
        if self._node_keys is None or type(account) is not int or account in self._extra:
            return None
        return self._node_keys.index(account)

    def __getitem__(self, account: int) -> Keypair:
        pair = self._made.get(account) or self._extra.get(account)
        if pair is not None:
            return pair
        index = self._index(account)
        if index is None or self._node_keys is None:
            raise KeyError(account)
        pair = self._node_keys.keypair(index)
        if pair.public_key != self._public_key(account):
            raise KeyFileError(
                f"{self._where}: account {account}: the seed does not give its public key"
            )
        self._made[account] = pair
        return pair

    def __contains__(self, account: object) -> bool:
        # The round asks this for every committee seat: a devnet's range answers in O(1).
        if self._range:
            return (type(account) is int and account in self._ids) or account in self._extra
        return account in self._extra or self._index(account) is not None

    def __iter__(self) -> Iterator[int]:
        if self._node_keys is not None:
            yield from (a for a in self._node_keys.ids if a not in self._extra)
        yield from self._extra

    def __len__(self) -> int:
        file = self._node_keys
        if file is None:
            return len(self._extra)
        return len(file) + sum(1 for a in self._extra if file.index(a) is None)


def _u64be(values: Sequence[int]) -> bytes:
    """Packed u64be, without a Python loop."""
    arr = array("Q", values)
    if sys.byteorder == "little":
        arr.byteswap()
    return arr.tobytes()


def _from_u64be(data: bytes) -> array[int] | range:
    """The ids of a key file: a range when they are one (a devnet node's every k-th
    account: O(1) lookups), else an array."""
    arr = array("Q")
    arr.frombytes(data)
    if sys.byteorder == "little":
        arr.byteswap()
    if len(arr) >= 2 and arr[1] > arr[0]:
        ids = range(arr[0], arr[-1] + 1, arr[1] - arr[0])
        if len(ids) == len(arr) and arr == array("Q", ids):
            return ids
    return arr


def write_node_keys(
    path: str | os.PathLike[str],
    keys: NodeKeys,
    *,
    overwrite: bool = False,
    passphrase: bytes | None = None,
    strength: str = DEFAULT_STRENGTH,
) -> None:
    """Save a node's keys (mode 0600; sealed when given a passphrase)."""
    write_key_file(
        path, keys.encode(), overwrite=overwrite, passphrase=passphrase, strength=strength
    )


def load_node_keys(
    path: str | os.PathLike[str],
    *,
    public_keys: bytes | None = None,
    passphrase: Passphrase | None = None,
) -> NodeKeys:
    """A node's keys from its file, checked.

    With `public_keys` (the genesis keys, n * 32 bytes by account id), every
    account must exist and its derived public key must match (O(accounts); a node
    checks each key at its first use instead, through `LocalKeys`).
    """
    where = str(path)
    data, _ = read_key_file(path, passphrase)
    if len(data) < _NODE_HEADER or not data.startswith(NODE_KEYS_MAGIC):
        raise KeyFileError(f"{where}: not a node key file (magic {NODE_KEYS_MAGIC.decode()})")
    at = len(NODE_KEYS_MAGIC)
    genesis_hash = data[at : at + HASH_SIZE]
    at += HASH_SIZE
    node = int.from_bytes(data[at : at + 4], "big")
    nodes = int.from_bytes(data[at + 4 : at + 8], "big")
    count = int.from_bytes(data[at + 8 : at + 16], "big")
    body = memoryview(data)[_NODE_HEADER:]
    if len(body) != count * _NODE_ENTRY:
        raise KeyFileError(
            f"{where}: count: {count} entries need {count * _NODE_ENTRY} bytes, got {len(body)}"
        )
    ids_be = column(body, _NODE_ENTRY, 0, 8)
    ids = _from_u64be(ids_be)
    seeds = column(body, _NODE_ENTRY, 8, SEED_SIZE)
    try:
        keys = NodeKeys(genesis_hash, node, nodes, ids, seeds)
    except ValueError as e:
        raise KeyFileError(f"{where}: {e}") from None
    if public_keys is not None:
        _check_against(keys, public_keys, where)
    return keys


def _check_against(keys: NodeKeys, public_keys: bytes, where: str) -> None:
    n = len(public_keys) // KEY_SIZE
    derived = keys.public_keys()
    for i, account in enumerate(keys.ids):
        if account >= n:
            raise KeyFileError(f"{where}: account {account}: not in the genesis ({n} accounts)")
        expected = public_keys[KEY_SIZE * account : KEY_SIZE * (account + 1)]
        if derived[KEY_SIZE * i : KEY_SIZE * (i + 1)] != expected:
            raise KeyFileError(f"{where}: account {account}: the seed does not give its public key")
