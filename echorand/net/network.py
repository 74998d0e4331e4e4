"""The peer-to-peer network on asyncio, uvloop in production (docs/protocol.md §12).

One `Peer` (`echorand.net.peer`, an `asyncio.Protocol`) per TCP connection proves its node
key (`Hello` and `HelloProof`), then cuts the stream into frames with the native
`split_frames`, one call per read; the `Network` drops duplicate gossip (`Seen`),
decodes the rest with `decode_many` and queues them for the node, one `Batch` per read:
consensus messages in `inbox`, transactions in `tx_inbox`. A bad frame drops that peer,
never the node: every drop is logged with its reason and counted in `metrics()`.

Hostile peers (§12, "Peer scores and bans"): a malicious `DropReason` adds its penalty to
the score of the sender's address (decaying with a half-life); at `BAN_SCORE` every
connection of that address is closed and the address is banned, for a time that doubles
with each ban. Inbound connections are limited in total and per address; a connection
that has not proven its key in `hello_timeout`, or is silent for `idle_timeout`, is
closed (every peer sends a keepalive when it has sent nothing for a quarter of that).

Memory is bounded in bytes: each inbox per peer (its reading pauses past
`inbox_per_peer`) and in total (past `inbox_limit`, every peer that adds to it pauses),
served round-robin over the peers; the partial frames being read (a peer that starts one
past `partial_limit` waits unread); each peer's send buffer (`out_soft`: `tx_batch` gossip
to it is shed; `out_hard`: dropped as too slow; all of them past `out_total`: the slow ones
are dropped); sync answers within the frame and the asker's send budget.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import random
from collections import Counter, deque
from collections.abc import Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

import uvloop

from echorand.core.validate import BAN_SCORE, DropReason
from echorand.net.aio import cancel_and_wait
from echorand.net.gossip import DEFAULT_SEEN, TX_BATCH_CODE, Batch, Seen
from echorand.net.peer import Peer, framed
from echorand.net.sync import BlockSource, answer, answered_blocks
from echorand.wire.crypto import Keypair
from echorand.wire.messages import (
    MAX_FRAME,
    DecodeError,
    FinalProof,
    Hello,
    Message,
    SyncRequest,
    SyncResponse,
    TxBatch,
    decode_many,
    encode,
)

if TYPE_CHECKING:
    from echorand.net.sync import Syncer

log = logging.getLogger(__name__)

PROTOCOL_VERSION = 2
"""`hello.version`: peers with another version are not spoken to (2: the proven handshake)."""

MiB = 1 << 20
BATCH_OVERHEAD = 256
"""Bytes charged to an inbox per batch on top of its frames (the objects around them)."""
KEEPALIVE = TxBatch([]).encode()
"""An empty `tx_batch`: sent to a peer we have sent nothing for `idle_timeout / 4`; taken
off the stream before de-duplication and never delivered."""
SMALL_FRAME = 1 << 16
"""Partial frames up to this length need no reservation from `partial_limit`."""
MAX_STANDINGS = 4096
"""Addresses whose score or ban is remembered; the least relevant are forgotten past it."""

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run `main` to completion on a new uvloop event loop (the node's loop)."""
    return uvloop.run(main)


def parse_address(text: str) -> tuple[str, int]:
    """`"host:port"` (`"[::1]:port"` for IPv6) as `(host, port)`; ValueError names the fault."""
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise ValueError(f"peer address {text!r}: expected host:port")
    try:
        number = int(port)
    except ValueError:
        raise ValueError(f"peer address {text!r}: port {port!r} is not a number") from None
    if not 0 < number < 65536:
        raise ValueError(f"peer address {text!r}: port {number} out of range 1..65535")
    return host.removeprefix("[").removesuffix("]"), number


def parse_peer(text: str) -> tuple[str, int, bytes | None]:
    """`"host:port"`, or `"KEY@host:port"` with the peer's node key pinned (64 hex digits):
    `(host, port, key or None)`; ValueError names the fault."""
    key_text, at, address = text.rpartition("@")
    if not at:
        return (*parse_address(text), None)
    try:
        key = bytes.fromhex(key_text)
    except ValueError:
        key = b""
    if len(key) != 32:
        raise ValueError(f"peer {text!r}: the pinned key must be 64 hex digits")
    return (*parse_address(address), key)


@dataclass(frozen=True, slots=True)
class NetConfig:
    """Everything the network is told: who we are, whom to dial, and the limits."""

    genesis_hash: bytes
    identity: Keypair
    """The node key: its public key is proven to every peer in the handshake."""
    host: str = "127.0.0.1"
    port: int = 0
    """Port to listen on; 0 takes a free one (`Network.port` tells which)."""
    peers: tuple[tuple[str, int], ...] = ()
    """Addresses dialed at start and redialed, with backoff, whenever the link drops."""
    pinned: Mapping[tuple[str, int], bytes] = field(default_factory=dict)
    """Node keys expected at some of `peers` (a validator's, from the configuration): a peer
    there that proves another key is dropped (`wrong_key`)."""
    version: int = PROTOCOL_VERSION
    max_frame: int = MAX_FRAME
    max_inbound: int = 64
    """Accepted connections (handshaking or not) beyond which new ones are refused."""
    max_per_address: int = 8
    """Accepted connections from one IP address beyond which new ones are refused."""
    hello_timeout: float = 5.0
    """The handshake deadline: a peer must have proven its key by then."""
    idle_timeout: float = 60.0
    """A peer that sends nothing for this long is dropped (keepalives every quarter of it)."""
    connect_timeout: float = 5.0
    backoff_min: float = 0.1
    backoff_max: float = 30.0
    out_soft: int = 4 * MiB
    """Per-peer send buffer past which `tx_batch` gossip to that peer is shed, and the most a
    sync answer to it may add."""
    out_hard: int = 2 * MAX_FRAME + 8
    """Per-peer send buffer that a write may not exceed: the peer is dropped as too slow."""
    out_total: int = 256 * MiB
    """All send buffers together: past it, a peer whose buffer is past `out_soft` is dropped."""
    inbox_limit: int = 64 * MiB
    """Bytes waiting for the node (each inbox), past which every peer that adds is paused."""
    inbox_per_peer: int = 8 * MiB
    """Bytes of one peer waiting for the node (each inbox), past which it is not read."""
    partial_limit: int = 64 * MiB
    """Bytes announced by the partial frames being read, past which a peer that starts a
    large one is not read until others complete."""
    seen_capacity: int = DEFAULT_SEEN
    sync_rate: float = 10.0
    """Sync requests per second a peer may send (with `sync_burst` at once); more cost it
    `sync_flood` and are not answered."""
    sync_burst: int = 20
    ban_base: float = 60.0
    """The first ban of an address, in seconds; each later one doubles, up to `ban_max`."""
    ban_max: float = 3600.0
    score_half_life: float = 60.0
    """Seconds in which an address's score halves."""
    close_timeout: float = 2.0
    """How long `close()` waits for each kind of thing to end (tasks, then connections)."""

    def __post_init__(self) -> None:
        if len(self.genesis_hash) != 32:
            raise ValueError("genesis_hash: must be 32 bytes")
        if not isinstance(self.identity, Keypair):
            raise TypeError("identity: must be a Keypair")
        if not 0 <= self.port < 65536:
            raise ValueError(f"port: {self.port} out of range 0..65535")
        if not 0 < self.max_frame <= MAX_FRAME:
            raise ValueError(f"max_frame: must be in 1..{MAX_FRAME}")
        if self.out_hard < self.max_frame + 4:
            raise ValueError("out_hard: must hold at least one frame (max_frame + 4)")
        if not 0 < self.out_soft <= self.out_hard:
            raise ValueError("out_soft: must be in 1..out_hard")
        if self.out_total < self.out_hard:
            raise ValueError("out_total: must be at least out_hard")
        for name in (
            "hello_timeout",
            "idle_timeout",
            "connect_timeout",
            "backoff_min",
            "backoff_max",
            "sync_rate",
            "ban_base",
            "ban_max",
            "score_half_life",
            "close_timeout",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name}: must be positive")
        if self.max_inbound < 0 or self.max_per_address < 1 or self.sync_burst < 1:
            raise ValueError("max_inbound, max_per_address and sync_burst: must be positive")
        if min(self.inbox_limit, self.inbox_per_peer, self.partial_limit) < 1:
            raise ValueError("inbox_limit, inbox_per_peer and partial_limit: must be positive")
        for address, key in self.pinned.items():
            if len(key) != 32:
                raise ValueError(f"pinned key of {address}: must be 32 bytes")

    @property
    def node_key(self) -> bytes:
        """Our node key (the public key of `identity`)."""
        return self.identity.public_key


class Inbox:
    """Batches waiting for the node, a queue per peer served round-robin.

    Bounded in bytes: a peer with more than `per_peer` waiting, or that adds while more
    than `limit` wait in all, is paused (`Peer.pause_reading(name)`); it is resumed once
    it is back under half its share and the whole under half the limit.
    """

    def __init__(self, name: str, limit: int, per_peer: int) -> None:
        self.name = name
        self.limit = limit
        self.per_peer = per_peer
        self.nbytes = 0
        self._queues: dict[Peer, deque[Batch]] = {}
        self._bytes: Counter[Peer] = Counter()
        self._ring: deque[Peer] = deque()
        self._paused: set[Peer] = set()
        self._count = 0
        self._waiter: asyncio.Future[None] | None = None
        self.pauses = 0
        """How many times a peer was paused (for the metrics)."""

    def __len__(self) -> int:
        return self._count

    @property
    def full(self) -> bool:
        return self.nbytes >= self.limit

    def waiting(self, peer: Peer) -> int:
        """Bytes of `peer` waiting."""
        return self._bytes[peer]

    def put(self, batch: Batch) -> None:
        peer = batch.peer
        queue = self._queues.get(peer)
        if queue is None:
            queue = self._queues[peer] = deque()
            self._ring.append(peer)
        queue.append(batch)
        size = batch.nbytes + BATCH_OVERHEAD
        self._bytes[peer] += size
        self.nbytes += size
        self._count += 1
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
        if peer not in self._paused and (
            self._bytes[peer] > self.per_peer or self.nbytes > self.limit
        ):
            self._paused.add(peer)
            self.pauses += 1
            peer.pause_reading(self.name)

    def get_nowait(self, skip: Iterable[Peer] = ()) -> Batch | None:
        """The oldest batch of the next peer in turn (not one of `skip`), or None."""
        skipped = set(skip)
        for _ in range(len(self._ring)):
            peer = self._ring.popleft()
            if peer in skipped:
                self._ring.append(peer)
                continue
            queue = self._queues[peer]
            batch = queue.popleft()
            if queue:
                self._ring.append(peer)
            else:
                del self._queues[peer]
            self._taken(peer, batch.nbytes + BATCH_OVERHEAD)
            return batch
        return None

    def forget(self, peer: Peer) -> None:
        """A peer is gone: it is not paused any more (what it sent is still served)."""
        self._paused.discard(peer)

    async def get(self) -> Batch:
        """The next batch in turn, waiting for one."""
        while not self._count:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        batch = self.get_nowait()
        assert batch is not None
        return batch

    def _taken(self, peer: Peer, size: int) -> None:
        self._count -= 1
        self._bytes[peer] -= size
        if self._bytes[peer] <= 0:
            del self._bytes[peer]
        self.nbytes -= size
        if not self._paused or self.nbytes > self.limit // 2:
            return
        for p in [p for p in self._paused if self._bytes[p] <= self.per_peer // 2]:
            self._paused.discard(p)
            p.resume_reading(self.name)


@dataclass(slots=True)
class Standing:
    """What an address has earned: its score (decaying), its bans, and until when."""

    score: float = 0.0
    at: float = 0.0
    bans: int = 0
    banned_until: float = 0.0
    last_reason: str = ""


class SyncClient(Protocol):
    """What the network tells the sync client (`echorand.net.sync.Syncer`)."""

    def peer_ready(self, peer: Peer) -> None: ...
    def peer_lost(self, peer: Peer) -> None: ...
    def response(self, peer: Peer, response: SyncResponse) -> None: ...
    def final_proof(self, peer: Peer, proof: FinalProof) -> None: ...


class Network:
    """The node's peers: listening, dialing, handshakes, gossip in and out, sync requests.

    `source` answers peers' sync requests and gives our tip for the Hello (tip 0 without).
    Decoded consensus gossip waits in `inbox` (`await receive()`), transactions in
    `tx_inbox`; `broadcast` sends to every peer.
    """

    def __init__(self, config: NetConfig, source: BlockSource | None = None) -> None:
        self.config = config
        self.source = source
        self.seen = Seen(config.seen_capacity)
        self.inbox = Inbox("inbox", config.inbox_limit, config.inbox_per_peer)
        self.tx_inbox = Inbox("tx_inbox", config.inbox_limit, config.inbox_per_peer)
        self.counters: Counter[str] = Counter()
        self.syncer: SyncClient | None = None
        self.port = config.port
        self.standings: dict[str, Standing] = {}
        self.partial_bytes = 0
        self._ids = itertools.count(1)
        self._conns: set[Peer] = set()
        self._by_key: dict[bytes, Peer] = {}
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False
        self._rng = random.Random()
        self._changed: asyncio.Event | None = None
        self._reserved: dict[Peer, int] = {}
        self._waiting_partial: deque[Peer] = deque()
        self._waiting_set: set[Peer] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watcher: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Network:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    # -- lifecycle

    async def start(self) -> None:
        """Listen on `config.host:config.port` and dial the configured peers."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        cfg = self.config
        self._server = await loop.create_server(
            lambda: Peer(self, outbound=False), cfg.host, cfg.port
        )
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("listening on %s:%d as %s..", cfg.host, self.port, cfg.node_key.hex()[:16])
        for host, port in cfg.peers:
            self.connect(host, port)
        self._watcher = loop.create_task(self._watch())

    def connect(self, host: str, port: int) -> None:
        """Dial `host:port` now and whenever the link drops, with exponential backoff."""
        self._spawn(self._dial(host, port))

    async def close(self) -> None:
        """Stop listening and dialing, and close every connection: in a bounded time, whatever
        the connections are doing (a dial cancelled mid-connect included)."""
        self._closing = True
        timeout = self.config.close_timeout
        if self._server is not None:
            self._server.close()
        tasks = list(self._tasks)
        if self._watcher is not None:
            tasks.append(self._watcher)
        await cancel_and_wait(tasks, timeout=timeout)
        conns = list(self._conns)
        for peer in conns:
            peer.drop(DropReason.SHUTDOWN, level=logging.DEBUG)
        waits = [asyncio.ensure_future(p.closed.wait()) for p in conns]
        if waits:
            _, pending = await asyncio.wait(waits, timeout=timeout)
            for w in pending:
                w.cancel()
        for peer in conns:
            if not peer.closed.is_set():
                log.info("%r did not report its close in %.1f s: forgotten", peer, timeout)
                peer.abandon()

    # -- the node's side

    @property
    def peers(self) -> list[Peer]:
        """Peers that completed the handshake and are connected."""
        return list(self._by_key.values())

    def now(self) -> float:
        """The loop's clock (0 before `start`)."""
        return self._loop.time() if self._loop is not None else 0.0

    def tip(self) -> int:
        """Our tip, for the Hello (0 without a source)."""
        return self.source.tip() if self.source is not None else 0

    async def receive(self) -> Batch:
        """The next batch of fresh consensus gossip, peers in turn (waits for one)."""
        return await self.inbox.get()

    def receive_nowait(self, skip: Iterable[Peer] = ()) -> Batch | None:
        return self.inbox.get_nowait(skip)

    def broadcast(self, msg: Message, exclude: Peer | None = None) -> int:
        """Send a message to every peer but `exclude`; returns how many were written to."""
        return self.broadcast_frames([encode(msg)], exclude)

    def broadcast_frames(
        self, frames: Sequence[bytes], exclude: Peer | None = None, *, mark: bool = True
    ) -> int:
        """Send encoded messages to every peer but `exclude` (`mark`: remember them as seen)."""
        for f in frames:
            if not 0 < len(f) <= self.config.max_frame:
                raise ValueError(f"frame of {len(f)} bytes outside 1..{self.config.max_frame}")
        if mark:
            self.seen.add_frames(frames)
        high = [f for f in frames if f[0] != TX_BATCH_CODE]
        low = [f for f in frames if f[0] == TX_BATCH_CODE]
        high_data, low_data = framed(high), framed(low)
        peers = [p for p in self._by_key.values() if p is not exclude]
        squeeze = sum(p.queued for p in peers) > self.config.out_total
        written = 0
        for peer in peers:
            if squeeze and peer.queued > self.config.out_soft:
                peer.drop(
                    DropReason.TOO_SLOW,
                    "its send buffer is past out_soft and all are past out_total",
                )
            elif peer.write(high_data, len(high), low_data, len(low)):
                written += 1
        return written

    def penalize(self, peer: Peer, reason: DropReason, detail: str = "") -> None:
        """Charge `reason`'s penalty to `peer`'s address; at BAN_SCORE, ban it (§12)."""
        if not reason.malicious:
            return
        self.counters[f"penalty_{reason}"] += 1
        if self.banned(peer.host):
            return  # the rest of what it sent before its ban: no second ban for it
        standing = self._standing(peer.host)
        standing.score += reason.penalty
        standing.last_reason = str(reason)
        log.info(
            "%r: %s costs %d (score %.0f of %d)%s",
            peer,
            reason,
            reason.penalty,
            standing.score,
            BAN_SCORE,
            f": {detail}" if detail else "",
        )
        if standing.score >= BAN_SCORE:
            self._ban(peer.host, standing, reason)

    def banned(self, host: str) -> float:
        """Seconds the ban of `host` still lasts (0: not banned)."""
        standing = self.standings.get(host)
        return 0.0 if standing is None else max(0.0, standing.banned_until - self.now())

    def status(self) -> dict[str, object]:
        """Peers, bans and scores, for the node's `/status`."""
        now = self.now()
        return {
            "peers": [
                {"address": f"{p.host}:{p.address[1]}", "key": p.key.hex(), "outbound": p.outbound}
                for p in self._by_key.values()
            ],
            "banned": {
                host: {
                    "seconds": round(s.banned_until - now, 1),
                    "bans": s.bans,
                    "reason": s.last_reason,
                }
                for host, s in self.standings.items()
                if s.banned_until > now
            },
            "scores": {
                host: round(self._decayed(s, now), 1)
                for host, s in self.standings.items()
                if self._decayed(s, now) >= 1
            },
        }

    def metrics(self) -> dict[str, int]:
        """Counters (frames and bytes in and out, drops by reason, ...) and gauges."""
        out = dict(self.counters)
        now = self.now()
        out["peers"] = len(self._by_key)
        out["connections"] = len(self._conns)
        out["banned"] = sum(1 for s in self.standings.values() if s.banned_until > now)
        out["inbox_bytes"] = self.inbox.nbytes
        out["inbox_batches"] = len(self.inbox)
        out["tx_inbox_bytes"] = self.tx_inbox.nbytes
        out["tx_inbox_batches"] = len(self.tx_inbox)
        out["partial_bytes"] = self.partial_bytes
        out["inbox_pauses"] = self.inbox.pauses + self.tx_inbox.pauses
        out["seen"] = len(self.seen)
        return out

    async def wait_for_peers(self, count: int) -> None:
        """Wait until at least `count` peers are connected."""
        while len(self._by_key) < count:
            await self._change().wait()

    def attach_syncer(self, syncer: Syncer | SyncClient) -> None:
        """Route sync responses and peer arrivals and departures to `syncer`."""
        self.syncer = syncer
        for peer in self._by_key.values():
            syncer.peer_ready(peer)

    # -- scores and bans

    def _standing(self, host: str) -> Standing:
        now = self.now()
        standing = self.standings.get(host)
        if standing is None:
            if len(self.standings) >= MAX_STANDINGS:
                self._forget(now)
            standing = self.standings[host] = Standing(at=now)
        standing.score = self._decayed(standing, now)
        standing.at = now
        return standing

    def _decayed(self, standing: Standing, now: float) -> float:
        return standing.score * math.pow(0.5, (now - standing.at) / self.config.score_half_life)

    def _forget(self, now: float) -> None:
        """Make room: drop the addresses not banned with the lowest scores (half of them)."""
        free = sorted(
            (h for h, s in self.standings.items() if s.banned_until <= now),
            key=lambda h: self._decayed(self.standings[h], now),
        )
        for host in free[: max(1, len(free) // 2)]:
            del self.standings[host]

    def _ban(self, host: str, standing: Standing, reason: DropReason) -> None:
        cfg = self.config
        standing.bans += 1
        seconds = min(cfg.ban_max, cfg.ban_base * 2 ** (standing.bans - 1))
        standing.banned_until = self.now() + seconds
        standing.score = 0.0
        self.counters["bans"] += 1
        log.warning("banned %s for %.0f s (ban %d, last: %s)", host, seconds, standing.bans, reason)
        for peer in [p for p in self._conns if p.host == host]:
            peer.drop(DropReason.BANNED, f"{host} is banned", level=logging.INFO)

    # -- connections

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _change(self) -> asyncio.Event:
        if self._changed is None:
            self._changed = asyncio.Event()
        return self._changed

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    async def _dial(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        cfg = self.config
        delay = cfg.backoff_min
        while not self._closing:
            wait = self.banned(host)
            if wait:
                await asyncio.sleep(wait)
                continue
            peer = Peer(self, outbound=True, address=(host, port))
            try:
                await asyncio.wait_for(
                    loop.create_connection(lambda p=peer: p, host, port), cfg.connect_timeout
                )
            except (OSError, TimeoutError) as e:
                self.counters["dial_failures"] += 1
                log.debug("dialing %s:%d failed: %s", host, port, e or type(e).__name__)
                peer.abandon()
            except asyncio.CancelledError:
                peer.abandon()  # connected or not, no connection_lost is owed to us now
                raise
            else:
                await peer.closed.wait()
                if peer.close_reason == DropReason.SELF:
                    log.info("not dialing %s:%d again: it is this node", host, port)
                    return
                if peer.ready:
                    delay = cfg.backoff_min
                other = (
                    self._by_key.get(peer.key)
                    if peer.close_reason == DropReason.DUPLICATE
                    else None
                )
                if other is not None:
                    await other.closed.wait()
            if self._closing:
                return
            await asyncio.sleep(delay * (0.5 + self._rng.random()))
            delay = min(delay * 2, cfg.backoff_max)

    async def _watch(self) -> None:
        """Once per quarter of `idle_timeout`: drop the silent peers, keep ours alive."""
        cfg = self.config
        period = cfg.idle_timeout / 4
        while True:
            await asyncio.sleep(period)
            now = self.now()
            for peer in list(self._conns):
                if peer.close_reason is not None:
                    continue
                if now - peer.last_in > cfg.idle_timeout:
                    peer.drop(DropReason.IDLE, f"nothing received for {cfg.idle_timeout:.0f} s")
                elif peer.ready and now - peer.last_out >= period:
                    peer.send_encoded(KEEPALIVE)

    def _admit(self, peer: Peer) -> bool:
        if peer.outbound:
            self._conns.add(peer)
            return True
        if self._closing:
            peer.drop(DropReason.SHUTDOWN, level=logging.DEBUG)
            return False
        ban = self.banned(peer.host)
        if ban:
            self.counters["refused_banned"] += 1
            peer.drop(DropReason.BANNED, f"for {ban:.0f} s more", level=logging.DEBUG)
            return False
        inbound = [p for p in self._conns if not p.outbound]
        if len(inbound) >= self.config.max_inbound:
            peer.drop(
                DropReason.PEER_LIMIT, f"{len(inbound)} inbound connections", level=logging.INFO
            )
            return False
        same = sum(1 for p in inbound if p.host == peer.host)
        if same >= self.config.max_per_address:
            peer.drop(
                DropReason.ADDRESS_LIMIT,
                f"{same} connections from {peer.host}",
                level=logging.DEBUG,
            )
            return False
        self._conns.add(peer)
        return True

    def _hello_problem(self, peer: Peer, hello: Hello) -> tuple[DropReason, str] | None:
        cfg = self.config
        if hello.version != cfg.version:
            return DropReason.WRONG_VERSION, f"version {hello.version}, ours is {cfg.version}"
        if hello.genesis_hash != cfg.genesis_hash:
            return (
                DropReason.WRONG_GENESIS,
                f"genesis {hello.genesis_hash.hex()[:16]}.. is not ours",
            )
        pinned = cfg.pinned.get(peer.address) if peer.outbound else None
        if pinned is not None and hello.node_key != pinned:
            return (
                DropReason.WRONG_KEY,
                f"key {hello.node_key.hex()[:16]}.., pinned {pinned.hex()[:16]}..",
            )
        return None

    def _dialer(self, peer: Peer) -> bytes:
        return self.config.node_key if peer.outbound else peer.key

    def _ready(self, peer: Peer) -> bool:
        """A peer proved its key: keep it (the one of two links to a node that both ends
        keep), tell the syncer."""
        other = self._by_key.get(peer.key)
        if other is not None:
            # Two links to one node: keep the one dialed by the smaller key (both ends
            # decide alike), or the newer one when the same side dialed both.
            if self._dialer(peer) <= self._dialer(other):
                other.drop(DropReason.DUPLICATE, f"replaced by {peer!r}", level=logging.INFO)
            else:
                peer.drop(
                    DropReason.DUPLICATE, f"already connected as {other!r}", level=logging.INFO
                )
                return False
        peer.ready = True
        self._by_key[peer.key] = peer
        self.counters["handshakes"] += 1
        tip = peer.hello.tip_round if peer.hello is not None else 0
        log.info("%r connected (%s, tip %d)", peer, "out" if peer.outbound else "in", tip)
        if self.syncer is not None:
            self.syncer.peer_ready(peer)
        self._notify()
        return True

    def _lost(self, peer: Peer) -> None:
        self._conns.discard(peer)
        self.inbox.forget(peer)
        self.tx_inbox.forget(peer)
        if self._by_key.get(peer.key) is peer:
            del self._by_key[peer.key]
        if peer.ready:
            if self.syncer is not None:
                self.syncer.peer_lost(peer)
            self._notify()

    def _reserve(self, peer: Peer, need: int) -> None:
        """`peer` is reading a partial frame of `need` bytes (0: none): above SMALL_FRAME it
        is counted against `partial_limit`, or the peer waits unread for room (at least one
        partial frame always proceeds)."""
        self._release(peer)
        if need <= SMALL_FRAME or peer.close_reason is not None:
            return
        if self.partial_bytes + need > self.config.partial_limit and self._reserved:
            if peer not in self._waiting_set:
                self.counters["partial_waits"] += 1
                self._waiting_set.add(peer)
                self._waiting_partial.append(peer)
                peer.pause_reading("partial")
            return
        self._reserved[peer] = need
        self.partial_bytes += need

    def _release(self, peer: Peer) -> None:
        need = self._reserved.pop(peer, 0)
        if not need:
            return
        self.partial_bytes -= need
        while self._waiting_partial:
            nxt = self._waiting_partial[0]
            if nxt.close_reason is not None or nxt in self._reserved:
                self._waiting_partial.popleft()
                self._waiting_set.discard(nxt)
                continue
            size = nxt._need
            if self._reserved and self.partial_bytes + size > self.config.partial_limit:
                return
            self._waiting_partial.popleft()
            self._waiting_set.discard(nxt)
            self._reserved[nxt] = size
            self.partial_bytes += size
            nxt.resume_reading("partial")

    # -- frames in

    def _deliver(self, peer: Peer, frames: list[bytes]) -> None:
        if KEEPALIVE in frames:
            kept = [f for f in frames if f != KEEPALIVE]
            self.counters["keepalives_in"] += len(frames) - len(kept)
            frames = kept
        fresh, keys, duplicates = self.seen.fresh(frames)
        if duplicates:
            self.counters["duplicates"] += duplicates
        if not fresh:
            return
        results = decode_many(fresh)
        if None not in keys and DecodeError not in map(type, results):
            # All gossip, all well formed (the usual read): no loop in Python but the split.
            self.seen.add_many(cast(list[bytes], keys))
            self._queue(peer, fresh, results)
            return
        messages: list[Message] = []
        kept: list[bytes] = []
        for frame, key, msg in zip(fresh, keys, results, strict=True):
            if isinstance(msg, DecodeError):
                peer.drop(DropReason.BAD_MESSAGE, str(msg))
                break
            if key is not None:
                self.seen.add(key)
                messages.append(msg)
                kept.append(frame)
                continue
            self._control(peer, msg)
            if peer.close_reason is not None:
                break
        if messages:
            self._queue(peer, kept, messages)

    def _queue(self, peer: Peer, frames: list[bytes], messages: list[Message]) -> None:
        """Consensus messages to `inbox`, transactions to `tx_inbox`: one batch each."""
        self.counters["delivered"] += len(messages)
        txs = [i for i, f in enumerate(frames) if f[0] == TX_BATCH_CODE]
        if len(txs) < len(frames):
            if txs:
                gone = set(txs)
                keep = [i for i in range(len(frames)) if i not in gone]
                c_frames, c_messages = [frames[i] for i in keep], [messages[i] for i in keep]
            else:
                c_frames, c_messages = frames, messages
            self.inbox.put(Batch(peer, c_messages, c_frames, sum(map(len, c_frames))))
        if txs:
            t_frames, t_messages = [frames[i] for i in txs], [messages[i] for i in txs]
            self.tx_inbox.put(Batch(peer, t_messages, t_frames, sum(map(len, t_frames))))

    def _control(self, peer: Peer, msg: Message) -> None:
        if isinstance(msg, SyncRequest):
            self._serve(peer, msg)
        elif isinstance(msg, SyncResponse):
            if self.syncer is None:
                peer.drop(DropReason.UNSOLICITED_SYNC, "a sync_response, and we are not syncing")
            else:
                self.syncer.response(peer, msg)
        elif isinstance(msg, FinalProof):
            if self.syncer is not None:
                self.syncer.final_proof(peer, msg)
        else:
            peer.drop(DropReason.BAD_HELLO, f"a {type(msg).__name__} after the handshake")

    def _serve(self, peer: Peer, request: SyncRequest) -> None:
        """Answer a sync request within the peer's request rate and its send budget."""
        cfg = self.config
        now = self.now()
        peer.sync_tokens = min(
            cfg.sync_burst, peer.sync_tokens + (now - peer.sync_at) * cfg.sync_rate
        )
        peer.sync_at = now
        if peer.sync_tokens < 1:
            self.counters["sync_requests_refused"] += 1
            self.penalize(peer, DropReason.SYNC_FLOOD, f"over {cfg.sync_rate:g} requests/s")
            return
        peer.sync_tokens -= 1
        budget = min(cfg.max_frame, cfg.out_soft - peer.queued)
        if peer.send_paused or budget <= 0:
            # It is not reading what we sent already: no more blocks for it until it does.
            self.counters["sync_requests_ignored"] += 1
            return
        data = answer(self.source, request, budget, cfg.max_frame)
        self.counters["sync_requests_served"] += 1
        peer.send_encoded(data)
        count = answered_blocks(data)
        if count and self.source is not None:
            # The proof that a block of the answer is final: what lets a node on another
            # chain from below it switch (docs/protocol.md §10).
            proof = self.source.final_proof(request.from_round, request.from_round + count - 1)
            if proof is not None and len(proof) <= budget - len(data):
                peer.send_encoded(proof)
                self.counters["final_proofs_sent"] += 1


def pinned_peers(entries: Iterable[tuple[str, int, bytes | None]]) -> dict[tuple[str, int], bytes]:
    """The pinned keys of `parse_peer` results, by address."""
    return {(host, port): key for host, port, key in entries if key is not None}
