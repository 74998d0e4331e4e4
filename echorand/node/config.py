"""A node's configuration: one TOML file (docs/protocol.md §15).

```toml
[node]
data_dir = "data"             # the LMDB ledger (created when new)
genesis = "genesis"           # the genesis directory (genesis.json, accounts.bin)
keys = "keys/node-0.keys"     # a devnet node key file, or key_files = ["a.json", ...]
validator = true              # false: a node with no keys that syncs and follows
log_level = "info"
min_peers = 0                 # peers to wait for before joining consensus (0: none)
join_timeout = 10.0           # seconds to wait for them at most
durable = true                # fsync each commit

[network]
host = "127.0.0.1"
port = 9000
peers = ["127.0.0.1:9001", "<64 hex digits>@10.0.0.2:9000"]  # KEY@: its node key pinned
node_key = "p2p.key"          # a key pair file (`echorand keys`); a fresh key when omitted
max_inbound = 64              # accepted connections at most, and per IP address:
max_per_address = 8
idle_timeout = 60.0           # a peer silent this long is dropped
sync_timeout = 20.0           # a sync request unanswered this long costs the peer its claim
sync_hedge = 2.0              # a sync request unanswered this long is asked of another peer too
ban_seconds = 60.0            # an address's first ban (doubles with each later one)

[api]
host = "127.0.0.1"
port = 8000                   # 0: a free port; omit the table to run no API

[mempool]
max_count = 100000
max_bytes = 33554432
max_per_sender = 256
min_fee = 0
backlog_seconds = 0.5         # the API answers 429 past this many seconds of commits
admission = true              # false: no admission control (for comparisons)

[blocks]
max_txs = 5000                # transactions a block of ours carries at most
budget_ms = 0                 # ms a block may cost (build, check, apply); 0: Λ / 2
```

Relative paths are relative to the file's directory. Every error names the
file and the field (`ConfigError`). `load_keys`: the accounts whose keys the
files it names hold.
"""

from __future__ import annotations

import logging
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from echorand.ledger.genesis import Genesis
from echorand.ledger.mempool import DEFAULT_MAX_BYTES, DEFAULT_MAX_COUNT, DEFAULT_MAX_PER_SENDER
from echorand.net.network import parse_peer
from echorand.node.backpressure import DEFAULT_BACKLOG_SECONDS
from echorand.wire.crypto import Keypair
from echorand.wire.keys import LocalKeys, is_sealed_file, load_keypair, load_node_keys
from echorand.wire.messages import MAX_BLOCK_TXS
from echorand.wire.seal import Passphrase

__all__ = ["ApiConfig", "ConfigError", "NodeConfig", "load_config", "load_keys"]

LOG_LEVELS = ("debug", "info", "warning", "error")
DEFAULT_BLOCK_TXS = 5000


class ConfigError(ValueError):
    """A configuration file that cannot be used; the message names the file and field."""


@dataclass(frozen=True, slots=True)
class ApiConfig:
    host: str = "127.0.0.1"
    port: int = 0


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """Everything a node is told (paths already resolved)."""

    data_dir: Path
    genesis: Path
    keys: Path | None = None
    """A devnet node key file (`ERKEYS01`)."""
    key_files: tuple[Path, ...] = ()
    """Key pair files (`echorand keys`); their accounts are found by public key."""
    log_level: str = "info"
    min_peers: int = 0
    join_timeout: float = 10.0
    durable: bool = True
    host: str = "127.0.0.1"
    port: int = 0
    peers: tuple[tuple[str, int], ...] = ()
    pinned: dict[tuple[str, int], bytes] = field(default_factory=dict)
    """Node keys expected at some of `peers` (`KEY@host:port`)."""
    node_key: Path | None = None
    """The node key's key pair file; None: a fresh key for each run."""
    max_inbound: int = 64
    max_per_address: int = 8
    idle_timeout: float = 60.0
    sync_timeout: float = 20.0
    sync_hedge: float = 2.0
    ban_seconds: float = 60.0
    api: ApiConfig | None = field(default_factory=ApiConfig)
    mempool_max_count: int = DEFAULT_MAX_COUNT
    mempool_max_bytes: int = DEFAULT_MAX_BYTES
    mempool_max_per_sender: int = DEFAULT_MAX_PER_SENDER
    mempool_min_fee: int = 0
    block_max_txs: int = DEFAULT_BLOCK_TXS
    mempool_backlog_seconds: float = DEFAULT_BACKLOG_SECONDS
    """Seconds of the admission pace the mempool holds, and the time its transactions may
    queue, before the API says busy (429)."""
    admission: bool = True
    """Whether admission control is on (`echorand.node.backpressure`); off only for comparisons."""
    block_budget_ms: float = 0.0
    """Milliseconds a block may cost this node; 0: half of Λ (`echorand.node.backpressure`)."""

    @property
    def log_level_number(self) -> int:
        return int(getattr(logging, self.log_level.upper()))


class _Table:
    """One TOML table, read field by field with errors naming `file: [table] field`."""

    def __init__(self, doc: dict[str, Any], where: str, name: str, known: set[str]) -> None:
        self.where = where
        self.name = name
        value = doc.get(name, {})
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: [{name}] must be a table")
        self.doc: dict[str, Any] = value
        unknown = sorted(set(value) - known)
        if unknown:
            raise ConfigError(f"{where}: [{name}] {unknown[0]}: unknown field")

    def error(self, key: str, why: str) -> ConfigError:
        return ConfigError(f"{self.where}: [{self.name}] {key}: {why}")

    def has(self, key: str) -> bool:
        return key in self.doc

    def str(self, key: str, default: str | None = None) -> str:
        value = self.doc.get(key, default)
        if value is None:
            raise self.error(key, "missing")
        if not isinstance(value, str) or not value:
            raise self.error(key, "must be a non-empty string")
        return value

    def int(self, key: str, default: int, low: int, high: int) -> int:
        value = self.doc.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.error(key, f"must be an integer, got {value!r}")
        if not low <= value <= high:
            raise self.error(key, f"{value} is outside {low}..{high}")
        return value

    def float(self, key: str, default: float, low: float) -> float:
        value = self.doc.get(key, default)
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise self.error(key, f"must be a number, got {value!r}")
        if value < low:
            raise self.error(key, f"{value} is below {low}")
        return float(value)

    def bool(self, key: str, default: bool) -> bool:
        value = self.doc.get(key, default)
        if not isinstance(value, bool):
            raise self.error(key, f"must be true or false, got {value!r}")
        return value

    def path(self, key: str, base: Path, default: str | None = None) -> Path:
        return (base / self.str(key, default)).resolve()

    def list(self, key: str) -> list[str]:
        value = self.doc.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.error(key, "must be a list of strings")
        return value


def load_config(path: str | Path) -> NodeConfig:
    """Read and check a node's TOML configuration."""
    file = Path(path)
    where = str(file)
    try:
        with file.open("rb") as f:
            doc = tomllib.load(f)
    except OSError as e:
        raise ConfigError(f"{where}: cannot read: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{where}: not valid TOML: {e}") from None
    unknown = sorted(set(doc) - {"node", "network", "api", "mempool", "blocks"})
    if unknown:
        raise ConfigError(f"{where}: [{unknown[0]}]: unknown table")
    return _parse(doc, where, file.parent)


def _parse(doc: dict[str, Any], where: str, base: Path) -> NodeConfig:
    node = _Table(
        doc,
        where,
        "node",
        {
            "data_dir",
            "genesis",
            "keys",
            "key_files",
            "log_level",
            "min_peers",
            "join_timeout",
            "durable",
            "validator",
        },
    )
    net = _Table(
        doc,
        where,
        "network",
        {
            "host",
            "port",
            "peers",
            "node_key",
            "max_inbound",
            "max_per_address",
            "idle_timeout",
            "sync_timeout",
            "sync_hedge",
            "ban_seconds",
        },
    )
    api = _Table(doc, where, "api", {"host", "port"})
    pool = _Table(
        doc,
        where,
        "mempool",
        {"max_count", "max_bytes", "max_per_sender", "min_fee", "backlog_seconds", "admission"},
    )
    blocks = _Table(doc, where, "blocks", {"max_txs", "budget_ms"})

    keys = node.path("keys", base) if node.has("keys") else None
    key_files = tuple((base / p).resolve() for p in node.list("key_files"))
    validator = node.bool("validator", True)
    if validator and keys is None and not key_files:
        raise node.error(
            "keys",
            "missing (give keys or key_files: whose votes this node signs; or set "
            "validator = false for a node that only follows)",
        )
    if not validator and (keys is not None or key_files):
        raise node.error("validator", "false, yet keys are given: a non-validator signs nothing")
    level = node.str("log_level", "info").lower()
    if level not in LOG_LEVELS:
        raise node.error("log_level", f"{level!r} is not one of {', '.join(LOG_LEVELS)}")
    peers = []
    for text in net.list("peers"):
        try:
            peers.append(parse_peer(text))
        except ValueError as e:
            raise net.error("peers", str(e)) from None
    return NodeConfig(
        data_dir=node.path("data_dir", base),
        genesis=node.path("genesis", base),
        keys=keys,
        key_files=key_files,
        log_level=level,
        min_peers=node.int("min_peers", 0, 0, 1024),
        join_timeout=node.float("join_timeout", 10.0, 0.0),
        durable=node.bool("durable", True),
        host=net.str("host", "127.0.0.1"),
        port=net.int("port", 0, 0, 65535),
        peers=tuple((host, port) for host, port, _ in peers),
        pinned={(host, port): key for host, port, key in peers if key is not None},
        node_key=net.path("node_key", base) if net.has("node_key") else None,
        max_inbound=net.int("max_inbound", 64, 0, 1 << 16),
        max_per_address=net.int("max_per_address", 8, 1, 1 << 16),
        idle_timeout=_positive(net, "idle_timeout", 60.0),
        sync_timeout=_positive(net, "sync_timeout", 20.0),
        sync_hedge=_positive(net, "sync_hedge", 2.0),
        ban_seconds=_positive(net, "ban_seconds", 60.0),
        api=ApiConfig(api.str("host", "127.0.0.1"), api.int("port", 0, 0, 65535))
        if "api" in doc
        else None,
        mempool_max_count=pool.int("max_count", DEFAULT_MAX_COUNT, 1, 1 << 40),
        mempool_max_bytes=pool.int("max_bytes", DEFAULT_MAX_BYTES, 153, 1 << 50),
        mempool_max_per_sender=pool.int("max_per_sender", DEFAULT_MAX_PER_SENDER, 1, 1 << 32),
        mempool_min_fee=pool.int("min_fee", 0, 0, (1 << 64) - 1),
        block_max_txs=blocks.int("max_txs", DEFAULT_BLOCK_TXS, 0, MAX_BLOCK_TXS),
        mempool_backlog_seconds=_positive(pool, "backlog_seconds", DEFAULT_BACKLOG_SECONDS),
        admission=pool.bool("admission", True),
        block_budget_ms=blocks.float("budget_ms", 0.0, 0.0),
    )


def _positive(table: _Table, key: str, default: float) -> float:
    value = table.float(key, default, 0.0)
    if value <= 0:
        raise table.error(key, "must be positive")
    return value


def load_keys(
    config: NodeConfig, genesis: Genesis, passphrase: Passphrase | None = None
) -> tuple[LocalKeys, list[str]]:
    """The node's accounts (id -> key pair) from its node key file and key pair files, and
    the files that are not sealed with a passphrase (echorand.wire.seal). The node key file's
    pairs are made, and checked against the genesis keys, at first use."""
    node_keys = None
    plaintext: list[str] = []
    if config.keys is not None:
        if not is_sealed_file(config.keys):
            plaintext.append(str(config.keys))
        node_keys = load_node_keys(config.keys, passphrase=passphrase)
        if node_keys.genesis_hash != genesis.hash:
            raise ValueError(f"{config.keys}: made for another genesis")
        if len(node_keys) and node_keys.ids[-1] >= genesis.count:
            raise ValueError(
                f"{config.keys}: account {node_keys.ids[-1]}: not in the genesis"
                f" ({genesis.count} accounts)"
            )
    extra: dict[int, Keypair] = {}
    if config.key_files:
        state = genesis.account_state(check_keys=False)
        for path in config.key_files:
            if not is_sealed_file(path):
                plaintext.append(str(path))
            pair = load_keypair(path, passphrase=passphrase)
            account = state.id_of(pair.public_key)
            if account is None:
                raise ValueError(f"{path}: its public key has no account in the genesis")
            extra[account] = pair
    return LocalKeys(node_keys, genesis.public_key, extra, where=str(config.keys)), plaintext
