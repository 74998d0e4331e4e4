"""`echorand devnet`: N real node processes on loopback under a transaction load.

The devnet writes a genesis (`create_devnet`) into a fresh directory, one TOML config, one
node key (`p2p.key`) and one LMDB directory per node, and starts `echorand node --config
FILE` for each on 127.0.0.1 with free ports (node k dials nodes 0..k-1, their node keys
pinned). It waits until every node has
joined consensus (`GET /status`), then a load driver submits pre-signed transfers in
batches over HTTP (`POST /tx`, raw 153-byte encodings), spread over the nodes, at the
offered rate. Finality is the time from a transaction's submission to the commit of the
block that carries it at node 0 (`committed_at_ms` of `GET /block/{round}`; both are
this machine's wall clock). At the end the chains of all nodes are compared round by
round (`GET /hashes`): a round with two different hashes is a fork.

Every node process dies with the devnet (SIGTERM, then SIGKILL; and PR_SET_PDEATHSIG
should the devnet itself be killed).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import hashlib
import json
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from echorand.ledger.mempool import MEMPOOL_FULL, SENDER_LIMIT
from echorand.node.backpressure import NODE_BUSY
from echorand.protocol.params import SEED_MODES, Params, Rewards
from echorand.protocol.security import analyse
from echorand.sim.stats import percentile
from echorand.tools.client import NodeClient, http_json
from echorand.tools.client.http import retry_after
from echorand.tools.genesis import (
    add_reward_arguments,
    create_devnet,
    devnet_master,
    node_keys_path,
    rewards_from_args,
)
from echorand.wire.constants import TX_TAG
from echorand.wire.crypto import Keypair
from echorand.wire.keys import write_keypair
from echorand.wire.transactions import NONCE_TOO_HIGH, devnet_seeds

DEVNET_REWARDS = Rewards(floor=1_000, ceiling=20_000, window=64, decay=3, producer_share=20)
"""Block rewards on (docs/protocol.md §16): small next to the 10^9 of each devnet account."""
DEVNET_PARAMS = Params(
    n_g=5,
    n_c=50,
    k=4,
    lam_ms=50,
    big_lam_ms=500,
    rewards=DEVNET_REWARDS,
    insecure_committee=True,
)
"""Loopback timing: step 2 waits 2λ = 100 ms for proposals; a 1 MB block needs far
less than Λ on loopback. 50 seats keep the per-step vote count (and its signatures)
small on 2 cores — far too few to be secure against an adversary (PROTOCOL §5), so the
genesis waives the committee check (`insecure_committee`) and the summary says so."""
DEFAULT_BLOCK_TXS = 5000
TX_FEE = 1
MAX_REQUEST_TXS = 10_000
WINDOW_MS = 10_000
"""The window of the sustained rate (`tps_per_10s`)."""
DEVNET_MEMPOOL = 20_000
"""Transactions a devnet node queues at most: a few seconds of the target load. With
admission control (`echorand.node.backpressure`) the API stops far below it (429: half a second
of commits); without (`--no-admission`) this bound refuses an overload ("mempool
full")."""


@dataclass(frozen=True, slots=True)
class DevnetOptions:
    nodes: int = 4
    accounts: int = 200
    senders: int | None = None
    """The accounts the load sends from (the first ones): all of them when None. A large
    ledger with few senders differs from a small one in its size only."""
    duration: float = 20.0
    tps: float = 1000.0
    """Offered load, transfers per second (0: no load)."""
    seed: str = "devnet"
    params: Params = DEVNET_PARAMS
    block_txs: int = DEFAULT_BLOCK_TXS
    directory: Path | None = None
    """Where to put everything (kept); a temporary directory (removed) when None."""
    durable: bool = True
    ready_timeout: float = 120.0
    drain: float = 10.0
    """Seconds after the load to wait for submitted transactions to commit."""
    tick: float = 0.1
    """Seconds between submissions (each node gets one batch per tick)."""
    admission: bool = True
    """Whether the nodes run admission control (off: the node as before it, to compare)."""


# --- processes -----------------------------------------------------------------------


def free_ports(count: int) -> list[int]:
    """`count` distinct free TCP ports on 127.0.0.1 (free when asked: a small race)."""
    socks, ports = [], []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Devnet:
    """The processes of a devnet and their directories; a context manager that stops them."""

    def __init__(
        self,
        directory: Path,
        *,
        nodes: int = 4,
        accounts: int = 200,
        seed: str = "devnet",
        params: Params = DEVNET_PARAMS,
        block_txs: int = DEFAULT_BLOCK_TXS,
        durable: bool = True,
        log_level: str = "info",
        keys: Sequence[int] | None = None,
        min_peers: Sequence[int] | None = None,
        network: dict[str, float | int] | None = None,
        admission: bool = True,
    ) -> None:
        """`keys[k]`: the key file whose accounts node k runs (default k; two nodes on one key
        file are one validator run twice). `min_peers[k]`: the peers node k waits for
        before it joins consensus (default N - 1). `network`: more `[network]` settings for
        every node (`sync_timeout`, ...)."""
        if keys is not None and (
            len(keys) != nodes or sorted(set(keys)) != list(range(max(keys) + 1))
        ):
            raise ValueError(f"keys: one key file per node, numbered from 0, got {list(keys)}")
        if min_peers is not None and len(min_peers) != nodes:
            raise ValueError(f"min_peers: one count per node, got {list(min_peers)}")
        self.directory = directory
        self.dials: list[list[str]] | None = None
        """`dials[k]`: the `host:port` addresses node k dials, when set (else `peers`)."""
        self.keys = list(range(nodes)) if keys is None else list(keys)
        self.min_peers = [nodes - 1] * nodes if min_peers is None else list(min_peers)
        self.network = dict(network or {})
        self.nodes = nodes
        self.accounts = accounts
        self.seed = seed
        self.params = params
        self.block_txs = block_txs
        self.durable = durable
        self.log_level = log_level
        self.admission = admission
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * nodes
        ports = free_ports(2 * nodes)
        self.p2p_ports = ports[:nodes]
        self.api_ports = ports[nodes:]
        self.genesis_hash = b""

    # -- where the nodes run (a subclass may place them elsewhere: echorand.tools.chaos)

    def address(self, k: int) -> str:
        """The IPv4 address node k listens on (P2P and API)."""
        return "127.0.0.1"

    def peers(self, k: int) -> list[str]:
        """The peers node k dials: `dials[k]` when set, else nodes 0..k-1, each pinned to its
        node key (`KEY@host:port`)."""
        if self.dials is not None:
            return list(self.dials[k])
        return [
            f"{self.node_key(j).public_key.hex()}@{self.address(j)}:{self.p2p_ports[j]}"
            for j in range(k)
        ]

    def data_dir(self, k: int) -> Path:
        """Node k's LMDB directory."""
        return self.directory / f"node-{k}" / "data"

    def node_command(self, k: int) -> list[str]:
        """The command line that runs node k."""
        return [
            sys.executable,
            "-m",
            "echorand.tools.cli",
            "node",
            "--config",
            str(self.config_path(k)),
        ]

    # -- files

    def create(self) -> None:
        """Write the genesis, the key files and one config per node."""
        genesis_dir = self.directory / "genesis"
        genesis = create_devnet(
            genesis_dir,
            accounts=self.accounts,
            nodes=max(self.keys) + 1,
            seed=self.seed,
            params=self.params,
            overwrite=True,
        )
        self.genesis_hash = genesis.hash
        for k in range(self.nodes):
            node_dir = self.directory / f"node-{k}"
            node_dir.mkdir(parents=True, exist_ok=True)
            write_keypair(node_dir / "p2p.key", self.node_key(k), overwrite=True)
            (node_dir / "node.toml").write_text(self.node_toml(k, genesis_dir), encoding="utf-8")

    def node_toml(self, k: int, genesis_dir: Path) -> str:
        """Node k's configuration file."""
        peers = ", ".join(f'"{peer}"' for peer in self.peers(k))
        extra = "".join(f"{name} = {value!r}\n" for name, value in self.network.items())
        return f"""[node]
data_dir = "{self.data_dir(k)}"
genesis = "{genesis_dir}"
keys = "{node_keys_path(genesis_dir, self.keys[k])}"
log_level = "{self.log_level}"
min_peers = {self.min_peers[k]}
join_timeout = 10.0
durable = {"true" if self.durable else "false"}

[network]
host = "{self.address(k)}"
port = {self.p2p_ports[k]}
peers = [{peers}]
node_key = "{self.directory / f"node-{k}" / "p2p.key"}"
{extra}
[api]
host = "{self.address(k)}"
port = {self.api_ports[k]}

[mempool]
max_count = {DEVNET_MEMPOOL}
admission = {"true" if self.admission else "false"}

[blocks]
max_txs = {self.block_txs}
"""

    def node_key(self, k: int) -> Keypair:
        """Node k's node key (from the devnet's seed: the same in every run)."""
        return Keypair.from_seed(hashlib.sha256(f"{self.seed}/p2p/{k}".encode()).digest())

    def config_path(self, k: int) -> Path:
        return self.directory / f"node-{k}" / "node.toml"

    def log_path(self, k: int) -> Path:
        return self.directory / f"node-{k}" / "node.log"

    def url(self, k: int, path: str) -> str:
        return f"http://{self.address(k)}:{self.api_ports[k]}{path}"

    # -- processes

    def start(self) -> None:
        for k in range(self.nodes):
            self.start_node(k)

    def start_node(self, k: int) -> None:
        """Start (or restart) node k; its log is appended to node-k/node.log."""
        if self.procs[k] is not None and self.procs[k].poll() is None:  # type: ignore[union-attr]
            raise RuntimeError(f"node {k} is running")
        with self.log_path(k).open("ab") as log:
            self.procs[k] = subprocess.Popen(
                self.node_command(k),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Not the caller's directory: `-m` puts the working directory first on
                # sys.path, and a source checkout there would shadow the installed package.
                cwd=self.log_path(k).parent,
                preexec_fn=_die_with_parent,
            )

    def kill(self, k: int, sig: int = signal.SIGKILL) -> int | None:
        """Send `sig` to node k and wait for it to exit; its exit status (None if it was not
        running). The node counts as stopped, not failed, until `start_node(k)`."""
        proc, self.procs[k] = self.procs[k], None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(sig)
        return proc.wait(30)

    def check_alive(self) -> None:
        """RuntimeError naming a node process that exited, with the end of its log."""
        for k, proc in enumerate(self.procs):
            if proc is not None and proc.poll() is not None:
                tail = self.log_path(k).read_text(errors="replace").splitlines()[-15:]
                raise RuntimeError(f"node {k} exited with {proc.returncode}:\n" + "\n".join(tail))

    def stop(self, timeout: float = 15.0) -> dict[int, int]:
        """SIGTERM every running node (and SIGCONT, should one be stopped), wait for them until
        `timeout`, then SIGKILL those still running. The exit status of each node process
        the devnet holds, by node: 0 for a node that stopped cleanly on SIGTERM, -9 for one
        killed here, and its own status for one that had exited already."""
        running = [p for p in self.procs if p is not None and p.poll() is None]
        for p in running:
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(signal.SIGTERM)
                p.send_signal(signal.SIGCONT)
        deadline = time.monotonic() + timeout
        for p in running:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        return {k: p.returncode for k, p in enumerate(self.procs) if p is not None}

    def __enter__(self) -> Devnet:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # -- state

    def status(self, k: int) -> dict[str, Any] | None:
        try:
            code, doc = http_json(self.url(k, "/status"), timeout=5.0)
        except (OSError, ValueError):
            return None
        return doc if code == 200 else None

    def wait_ready(self, timeout: float = 120.0, nodes: Iterator[int] | None = None) -> None:
        """Wait until every node (or those of `nodes`) answers /status and joined consensus."""
        todo = set(range(self.nodes) if nodes is None else nodes)
        deadline = time.monotonic() + timeout
        while todo:
            self.check_alive()
            for k in sorted(todo):
                doc = self.status(k)
                if doc is not None and doc["sync"]["joined"]:
                    todo.discard(k)
            if todo and time.monotonic() > deadline:
                raise TimeoutError(f"nodes {sorted(todo)} not ready after {timeout} s")
            time.sleep(0.2)

    def client(self, k: int) -> NodeClient:
        return NodeClient(f"http://127.0.0.1:{self.api_ports[k]}")

    def hashes(self, k: int, first: int, last: int) -> list[str]:
        return self.client(k).hashes(first, last)

    def forks(self) -> tuple[int, int]:
        """(rounds where two nodes hold different blocks, rounds compared): up to the lowest
        tip of the nodes."""
        tips = []
        for k in range(self.nodes):
            doc = self.status(k)
            if doc is None:
                raise RuntimeError(f"node {k} does not answer /status")
            tips.append(doc["tip"]["round"])
        common = min(tips)
        chains = [self.hashes(k, 1, common) for k in range(self.nodes)]
        forks = sum(1 for hs in zip(*chains, strict=True) if len(set(hs)) > 1)
        return forks, common


# --- the load ------------------------------------------------------------------------


class TransferSigner:
    """Signs transfers of 1 unit from a devnet account to the next one (account i to i + 1
    mod n), for the network whose genesis hash is `chain`, as 153-byte encodings. (Signed
    by libsodium over the payload of `Transaction.signing_bytes`, whose prefix
    `tag || 0x00 || chain` is the same for all.)"""

    def __init__(
        self, seed: str, accounts: int, chain: bytes, fee: int = TX_FEE, senders: int | None = None
    ) -> None:
        """Signs for the first `senders` accounts (all by default): only their keys and
        their recipients' are made (35 s for all of a million accounts)."""
        from nacl.bindings import crypto_sign_seed_keypair

        senders = accounts if senders is None else min(senders, accounts)
        used = min(accounts, senders + 1)
        seeds = devnet_seeds(devnet_master(seed), used)
        pairs = [crypto_sign_seed_keypair(seeds[32 * i : 32 * (i + 1)]) for i in range(used)]
        self._secrets = [secret for _, secret in pairs]
        self.public_keys = [public for public, _ in pairs]
        self._prefix = TX_TAG + b"\x00" + chain
        amount = (1).to_bytes(8, "big")
        fee_bytes = fee.to_bytes(8, "big")
        self._heads = [
            b"\x00" + pairs[i][0] + pairs[(i + 1) % accounts][0] + amount + fee_bytes
            for i in range(senders)
        ]

    def sign(self, account: int, nonce: int) -> bytes:
        """The transfer of account `account` with nonce `nonce`: always the same bytes."""
        from nacl.bindings import crypto_sign

        body = self._heads[account] + nonce.to_bytes(8, "big")
        return body + crypto_sign(self._prefix + body, self._secrets[account])[:64]


def sign_transfers(
    seed: str, accounts: int, count: int, chain: bytes, fee: int = TX_FEE
) -> list[bytes]:
    """`count` signed transfers (`TransferSigner`) between the devnet's accounts: transfer j
    is from account j mod n, with nonce j div n. Only the keys of the accounts used are
    made."""
    signer = TransferSigner(seed, accounts, chain, fee, senders=min(accounts, count))
    return [signer.sign(j % accounts, j // accounts) for j in range(count)]


@dataclass(slots=True)
class LoadStats:
    submitted: int = 0
    """Transactions sent, resubmissions included."""
    accepted: int = 0
    retried: int = 0
    """Refused for a transient reason (RETRIED) and submitted again."""
    refused: dict[str, int] = field(default_factory=dict)
    submit_ms: dict[bytes, int] = field(default_factory=dict)
    """tx id -> wall-clock ms of the request a node accepted it in."""
    offered_ms: dict[bytes, int] = field(default_factory=dict)
    """Encoding -> wall-clock ms the load offered it (queued it for its node)."""
    offered_by_id: dict[bytes, int] = field(default_factory=dict)
    """tx id -> wall-clock ms the load offered it, once accepted."""
    http_errors: int = 0
    busy: int = 0
    """Requests a node answered 429 (busy): not read, waited for as it asked."""
    deferred: int = 0
    """Transactions held back by a busy node: a 429, or past its bound's room (counted at
    each wait)."""
    busy_wait_s: float = 0.0
    """Seconds the submitters waited for busy nodes, all nodes together."""


@dataclass(slots=True)
class ChainStats:
    """What node 0 committed, read block by block."""

    next_round: int = 1
    blocks: list[tuple[int, int, bool, int]] = field(default_factory=list)
    """(round, committed_at_ms, empty, tx count)."""
    finality_ms: list[int] = field(default_factory=list)
    """From the accepting request to the commit at node 0, for each of ours committed."""
    offered_finality_ms: list[int] = field(default_factory=list)
    """From the load's offer (waits for busy nodes included) to the commit at node 0."""
    committed_ids: int = 0


RETRIED = frozenset({MEMPOOL_FULL, SENDER_LIMIT, NONCE_TOO_HIGH, NODE_BUSY})
"""Refusals a client retries: a full pool or a busy node (backpressure), and the nonce gaps
they leave."""


@dataclass(frozen=True, slots=True)
class Submitted:
    """What a node did with one request: the transactions to submit again, in order, the
    seconds to wait first (a busy node's hint; 0: go on), and whether the node took only
    the request's head (`NODE_BUSY`: the request was larger than its pace had room for)."""

    retry: list[bytes]
    wait: float = 0.0
    cut: bool = False


async def _submit(session: Any, url: str, txs: list[bytes], stats: LoadStats) -> Submitted:
    """POST `txs`. A busy node (429) read none of them: all go back, after its hint. Else
    those refused for a reason in RETRIED go back, in order.

    A transaction's submission time is that of the request a node accepted it in (the
    finality of what the nodes accepted); the time the load offered it is kept beside it
    (`offered_by_id`: the finality a client sees, waits for busy nodes included)."""
    body = b"".join(txs)
    now = int(time.time() * 1000)
    try:
        async with session.post(
            url, data=body, headers={"Content-Type": "application/octet-stream"}
        ) as response:
            data = await response.read()
            status, headers = response.status, response.headers
        doc = orjson.loads(data)
    except Exception:
        stats.http_errors += 1
        return Submitted([])
    if status == 429:
        wait = retry_after(headers, doc)
        stats.busy += 1
        stats.deferred += len(txs)
        stats.busy_wait_s += wait
        return Submitted(txs, wait)
    stats.submitted += len(txs)
    stats.accepted += doc.get("accepted", 0)
    retry = []
    cut = False
    for tx, item in zip(txs, doc.get("results", ()), strict=False):
        if item["accepted"]:
            tx_id = hashlib.sha256(tx).digest()
            stats.submit_ms.setdefault(tx_id, now)
            stats.offered_by_id.setdefault(tx_id, stats.offered_ms.pop(tx, now))
        else:
            error = item["error"]
            stats.refused[error] = stats.refused.get(error, 0) + 1
            if error in RETRIED:
                retry.append(tx)
            if error == NODE_BUSY:
                stats.deferred += 1
                cut = True
    stats.retried += len(retry)
    return Submitted(retry, 0.0, cut)


async def _load(
    urls: Sequence[str],
    txs: list[bytes],
    options: DevnetOptions,
    stats: LoadStats,
    stop: asyncio.Event,
) -> None:
    """Offer `options.tps` transfers a second to the nodes' `POST /tx` at `urls`. Each
    sender's transfers go to one node (sender mod nodes) in nonce order, one request at a
    time per node: a node refuses a nonce gap, and gossip keeps the order from there. A
    busy node (429) is left alone for the time it asks; refusals in RETRIED are submitted
    again after a tick. A node that took only a request's head gets requests of that size
    from then on (doubled with each request it takes whole): what it refused was sent for
    nothing. The queues are deques: past a node's capacity they only grow, and a retry goes
    back to the front."""
    import aiohttp

    if options.tps <= 0:
        await stop.wait()
        return
    loop = asyncio.get_running_loop()
    nodes = len(urls)
    queues: list[deque[bytes]] = [deque() for _ in range(nodes)]
    sizes = [MAX_REQUEST_TXS] * nodes
    wake = [asyncio.Event() for _ in range(nodes)]
    finished = False

    async def submitter(k: int, session: aiohttp.ClientSession) -> None:
        while True:
            if not queues[k]:
                if finished:
                    return
                await wake[k].wait()
                wake[k].clear()
                continue
            queue = queues[k]
            chunk = [queue.popleft() for _ in range(min(sizes[k], len(queue)))]
            answer = await _submit(session, urls[k], chunk, stats)
            if answer.cut:
                sizes[k] = max(1, len(chunk) - len(answer.retry))
            elif not answer.wait:
                sizes[k] = min(MAX_REQUEST_TXS, 2 * sizes[k])
            if answer.retry and not finished:
                # Back to the front, in order; wait as a busy node asked, or a tick.
                queue.extendleft(reversed(answer.retry))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), answer.wait or options.tick)

    start = loop.time()
    sent = 0
    async with aiohttp.ClientSession() as session:
        workers = [loop.create_task(submitter(k, session)) for k in range(nodes)]
        while not stop.is_set() and sent < len(txs):
            due = min(len(txs), int((loop.time() - start) * options.tps))
            offered = int(time.time() * 1000)
            for j in range(sent, due):
                queues[(j % _senders(options)) % nodes].append(txs[j])
                stats.offered_ms[txs[j]] = offered
            sent = due
            for event in wake:
                event.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), options.tick)
        finished = True
        for k in range(nodes):
            queues[k].clear()
            wake[k].set()
        await asyncio.gather(*workers, return_exceptions=True)


async def _follow(net: Devnet, chain: ChainStats, stats: LoadStats) -> None:
    """Read node 0's new blocks: commit times, sizes, and the finality of our transactions."""
    import aiohttp

    async with aiohttp.ClientSession() as session:
        while True:
            try:
                async with session.get(net.url(0, f"/block/{chain.next_round}")) as response:
                    if response.status == 404:
                        await asyncio.sleep(0.05)
                        continue
                    doc = orjson.loads(await response.read())
            except aiohttp.ClientError:
                await asyncio.sleep(0.2)
                continue
            at = doc["committed_at_ms"] or int(time.time() * 1000)
            chain.blocks.append((doc["round"], at, doc["empty"], doc["tx_count"]))
            for tx_id in doc["tx_ids"]:
                key = bytes.fromhex(tx_id)
                sent = stats.submit_ms.get(key)
                if sent is not None:
                    chain.finality_ms.append(at - sent)
                    chain.offered_finality_ms.append(at - stats.offered_by_id.get(key, sent))
            chain.committed_ids += len(doc["tx_ids"])
            chain.next_round += 1


def _window(chain: ChainStats, start_ms: int, end_ms: int) -> tuple[int, int, int]:
    blocks = [b for b in chain.blocks if start_ms <= b[1] < end_ms]
    return len(blocks), sum(1 for b in blocks if b[2]), sum(b[3] for b in blocks)


def _finality(chain: ChainStats, start_ms: int, end_ms: int, final_round: int) -> dict[str, int]:
    """The blocks of the window that are final at node 0 (PROTOCOL §6: a block is final when
    its round is at most the node's final round, `GET /block/{r}`'s `final`), and the rest,
    tentative."""
    rounds = [b[0] for b in chain.blocks if start_ms <= b[1] < end_ms]
    final = sum(1 for r in rounds if r <= final_round)
    return {
        "final_round": final_round,
        "final_blocks": final,
        "tentative_blocks": len(rounds) - final,
    }


def _progress_table(chain: ChainStats, stats: LoadStats, start_ms: int, options: DevnetOptions):
    from rich.table import Table

    now = int(time.time() * 1000)
    elapsed = max(1e-3, (now - start_ms) / 1000)
    recent = [b for b in chain.blocks if b[1] >= now - 5000]
    span = 5.0 if elapsed > 5 else elapsed
    table = Table(title=f"echorand devnet: {options.nodes} nodes", show_header=True)
    for name in (
        "elapsed",
        "round",
        "blocks",
        "empty",
        "blocks/s",
        "tx/s (5 s)",
        "submitted",
        "committed",
        "finality p50",
        "p99",
    ):
        table.add_column(name, justify="right")
    p50 = percentile(chain.finality_ms[-5000:], 50)
    p99 = percentile(chain.finality_ms[-5000:], 99)
    table.add_row(
        f"{elapsed:.1f} s",
        str(chain.next_round - 1),
        str(len(chain.blocks)),
        str(sum(1 for b in chain.blocks if b[2])),
        f"{len(recent) / span:.2f}",
        f"{sum(b[3] for b in recent) / span:,.0f}",
        f"{stats.submitted:,}",
        f"{len(chain.finality_ms):,}",
        "-" if p50 is None else f"{p50} ms",
        "-" if p99 is None else f"{p99} ms",
    )
    return table


async def _drive(net: Devnet, txs: list[bytes], options: DevnetOptions, live: bool) -> dict:
    stats = LoadStats()
    chain = ChainStats()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    follower = loop.create_task(_follow(net, chain, stats))
    # Start following at the current tip: rounds before the load are not measured.
    first = net.status(0)
    chain.next_round = (first["tip"]["round"] if first else 0) + 1
    start_ms = int(time.time() * 1000)
    urls = [net.url(k, "/tx") for k in range(net.nodes)]
    loader = loop.create_task(_load(urls, txs, options, stats, stop))
    display = None
    if live:
        from rich.live import Live

        display = Live(_progress_table(chain, stats, start_ms, options), refresh_per_second=4)
        display.start()
    try:
        deadline = loop.time() + options.duration
        while loop.time() < deadline:
            await asyncio.sleep(min(0.25, max(0.0, deadline - loop.time())))
            await asyncio.to_thread(net.check_alive)
            if display is not None:
                display.update(_progress_table(chain, stats, start_ms, options))
        end_ms = int(time.time() * 1000)
        stop.set()
        await loader
        drain_until = loop.time() + options.drain
        while len(chain.finality_ms) < stats.accepted and loop.time() < drain_until:
            await asyncio.sleep(0.1)
            if display is not None:
                display.update(_progress_table(chain, stats, start_ms, options))
    finally:
        stop.set()
        if display is not None:
            display.stop()
        follower.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await follower
        if not loader.done():
            loader.cancel()
    seconds = (end_ms - start_ms) / 1000
    blocks, empty, transactions = _window(chain, start_ms, end_ms)
    windows = [
        _window(chain, t, t + WINDOW_MS)[2] * 1000 / WINDOW_MS
        for t in range(start_ms, end_ms - WINDOW_MS + 1, WINDOW_MS)
    ]
    forks, compared = await asyncio.to_thread(net.forks)
    last = await asyncio.to_thread(net.status, 0)
    finality = _finality(chain, start_ms, end_ms, last["final_round"] if last else 0)
    return {
        "nodes": options.nodes,
        "accounts": options.accounts,
        "senders": _senders(options),
        "seconds": round(seconds, 3),
        "offered_tps": options.tps,
        "admission": options.admission,
        "blocks": blocks,
        "empty_blocks": empty,
        **finality,
        "blocks_per_s": round(blocks / seconds, 3) if seconds else 0.0,
        "transactions": transactions,
        "tps": round(transactions / seconds, 1) if seconds else 0.0,
        "tps_per_10s": [round(w, 1) for w in windows],
        "submitted": stats.submitted,
        "accepted": stats.accepted,
        "refused": stats.refused,
        "retried": stats.retried,
        "busy": stats.busy,
        "deferred": stats.deferred,
        "busy_wait_s": round(stats.busy_wait_s, 3),
        "http_errors": stats.http_errors,
        "committed_of_submitted": len(chain.finality_ms),
        "offered_finality_ms": {
            "p50": percentile(chain.offered_finality_ms, 50),
            "p99": percentile(chain.offered_finality_ms, 99),
        },
        "finality_ms": {
            "p50": percentile(chain.finality_ms, 50),
            "p99": percentile(chain.finality_ms, 99),
        },
        "forks": forks,
        "rounds_compared": compared,
        "supply": last["supply"] if last else None,
        "params": {
            "n_g": options.params.n_g,
            "n_c": options.params.n_c,
            "t_h": options.params.t_h,
            "lam_ms": options.params.lam_ms,
            "big_lam_ms": options.params.big_lam_ms,
            "block_txs": options.block_txs,
        },
        "committee": _committee_summary(options.params),
    }


def _committee_summary(params: Params) -> dict[str, object]:
    """The committee security of the devnet's parameters (PROTOCOL §5): a devnet's few seats
    fail the 2^-80 check, which its genesis waives (`insecure_committee`)."""
    security = analyse(params)
    return {**security.to_json(), "waived": params.insecure_committee}


def _senders(options: DevnetOptions) -> int:
    """How many accounts the load sends from (transfer j: from account j mod that)."""
    return options.accounts if options.senders is None else options.senders


def run_devnet(
    options: DevnetOptions,
    *,
    live: bool = False,
    say: Callable[[str], None] = lambda _text: None,
) -> dict[str, Any]:
    """Run a devnet under load for `options.duration` seconds; the summary."""
    temporary = options.directory is None
    directory = (
        Path(tempfile.mkdtemp(prefix="echorand-devnet-")) if temporary else options.directory
    )
    assert directory is not None
    try:
        count = int(options.tps * (options.duration + 1)) if options.tps > 0 else 0
        net = Devnet(
            directory,
            nodes=options.nodes,
            accounts=options.accounts,
            seed=options.seed,
            params=options.params,
            block_txs=options.block_txs,
            durable=options.durable,
            admission=options.admission,
        )
        net.create()
        say(f"genesis {net.genesis_hash.hex()[:16]}.. in {directory}")
        started = time.perf_counter()
        txs = sign_transfers(options.seed, _senders(options), count, net.genesis_hash)
        if count:
            say(f"signed {count:,} transfers in {time.perf_counter() - started:.1f} s")
        with net:
            net.start()
            net.wait_ready(options.ready_timeout)
            say(f"{options.nodes} nodes ready (API ports {net.api_ports})")
            summary = asyncio.run(_drive(net, txs, options, live))
        summary["directory"] = None if temporary else str(directory)
        return summary
    finally:
        if temporary:
            shutil.rmtree(directory, ignore_errors=True)


# --- the command ---------------------------------------------------------------------


def add_devnet_arguments(parser: argparse.ArgumentParser) -> None:
    d = DevnetOptions()
    p = d.params
    parser.add_argument("--nodes", type=int, default=d.nodes, help="node processes")
    parser.add_argument("--accounts", type=int, default=d.accounts, help="genesis accounts")
    parser.add_argument(
        "--senders", type=int, default=None, help="accounts the load sends from (default: all)"
    )
    parser.add_argument("--duration", type=float, default=d.duration, help="seconds of load")
    parser.add_argument("--tps", type=float, default=d.tps, help="offered transfers per second")
    parser.add_argument("--seed", default=d.seed, help="text the keys and Q[0] derive from")
    parser.add_argument("--block-txs", type=int, default=d.block_txs, help="max txs per block")
    parser.add_argument("--n-g", type=int, default=p.n_g, help="N_g: producer seats")
    parser.add_argument("--n-c", type=int, default=p.n_c, help="N_c: verifier seats")
    parser.add_argument("--lam-ms", type=int, default=p.lam_ms, help="lambda, in ms")
    parser.add_argument("--big-lam-ms", type=int, default=p.big_lam_ms, help="Lambda, in ms")
    parser.add_argument(
        "--seed-mode",
        choices=SEED_MODES,
        default=p.seed_mode,
        help="the leader's seed credential: an Ed25519 signature or an RFC 9381 VRF proof",
    )
    add_reward_arguments(parser, p.rewards)
    parser.add_argument("--dir", type=Path, default=None, help="keep everything here")
    parser.add_argument("--no-fsync", action="store_true", help="no fsync at each commit")
    parser.add_argument(
        "--no-admission",
        action="store_true",
        help="nodes without admission control (no 429, no block budget): to compare",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def options_from_args(args: argparse.Namespace) -> DevnetOptions:
    if args.nodes < 1 or args.accounts < args.nodes:
        raise ValueError("need at least one node and at least as many accounts as nodes")
    if args.senders is not None and not 2 <= args.senders <= args.accounts:
        raise ValueError("--senders must be between 2 and --accounts")
    if args.duration <= 0 or args.tps < 0:
        raise ValueError("--duration must be positive and --tps not negative")
    params = Params(
        n_g=args.n_g,
        n_c=args.n_c,
        k=DEVNET_PARAMS.k,
        lam_ms=args.lam_ms,
        big_lam_ms=args.big_lam_ms,
        rewards=rewards_from_args(args),
        insecure_committee=True,
        seed_mode=args.seed_mode,
    )
    return DevnetOptions(
        nodes=args.nodes,
        accounts=args.accounts,
        senders=args.senders,
        duration=args.duration,
        tps=args.tps,
        seed=args.seed,
        params=params,
        block_txs=args.block_txs,
        directory=args.dir,
        durable=not args.no_fsync,
        admission=not args.no_admission,
    )


def _supply_rows(supply: dict[str, int] | None) -> list[tuple[str, str]]:
    """The reward rows of the summary table: minted units and the supply (node 0's view)."""
    if not supply:
        return []
    return [
        ("minted by rewards (level)", f"{supply['minted']:,} ({supply['reward_level']:,})"),
        ("supply = genesis + minted", f"{supply['total']:,}"),
    ]


def print_summary(summary: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="devnet summary", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    f, o = summary["finality_ms"], summary["offered_finality_ms"]
    rows = [
        ("nodes", summary["nodes"]),
        ("seconds", summary["seconds"]),
        ("blocks (empty)", f"{summary['blocks']} ({summary['empty_blocks']})"),
        (
            "blocks final / tentative",
            f"{summary['final_blocks']} / {summary['tentative_blocks']}"
            f" (final round {summary['final_round']})",
        ),
        ("blocks per second", summary["blocks_per_s"]),
        ("transactions committed", f"{summary['transactions']:,}"),
        ("transactions per second", f"{summary['tps']:,}"),
        ("offered per second", f"{summary['offered_tps']:,}"),
        ("submitted / accepted", f"{summary['submitted']:,} / {summary['accepted']:,}"),
        (
            "deferred by busy nodes (429s)",
            f"{summary['deferred']:,} ({summary['busy']:,}, {summary['busy_wait_s']:g} s waited)",
        ),
        ("finality p50 / p99 (from acceptance)", f"{f['p50']} ms / {f['p99']} ms"),
        ("p50 / p99 from the offer (busy waits in)", f"{o['p50']} ms / {o['p99']} ms"),
        ("forks", f"{summary['forks']} in {summary['rounds_compared']} rounds"),
        ("committees", _committee_row(summary["committee"])),
        *_supply_rows(summary["supply"]),
    ]
    if summary["refused"]:
        rows.append(("refused", json.dumps(summary["refused"])))
    for k, v in rows:
        table.add_row(k, str(v))
    Console().print(table)


def _committee_row(committee: dict[str, Any]) -> str:
    if committee["secure"]:
        return f"secure at f = {committee['f']} (every probability <= 2^-80)"
    t_h = committee["t_h"]
    return (
        f"INSECURE, waived: N_c = {committee['n_c']} lets an adversary of f = {committee['f']}"
        f" complete two quorums with probability {t_h['equivocating']} a step"
    )


def run_devnet_command(args: argparse.Namespace) -> int:
    try:
        options = options_from_args(args)
    except ValueError as e:
        print(f"echorand devnet: {e}", file=sys.stderr)
        return 2
    say = (lambda text: print(text, file=sys.stderr)) if args.json else print
    try:
        summary = run_devnet(options, live=not args.json and sys.stdout.isatty(), say=say)
    except KeyboardInterrupt:
        print("echorand devnet: interrupted; all nodes stopped", file=sys.stderr)
        return 130
    except (RuntimeError, TimeoutError, ValueError, OSError) as e:
        print(f"echorand devnet: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(summary))
    else:
        print_summary(summary)
    return 0 if summary["forks"] == 0 else 1


def main_devnet(args: argparse.Namespace) -> int:
    """`echorand devnet`. SIGTERM behaves like Ctrl-C: the nodes are stopped on the way out."""

    def interrupt(_sig: int, _frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        return run_devnet_command(args)
    finally:
        signal.signal(signal.SIGTERM, previous)
