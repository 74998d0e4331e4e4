"""The peer-to-peer network on asyncio, uvloop in production (docs/protocol.md §12).

One `Peer` (`echorand.peer`, an `asyncio.Protocol`) per TCP connection cuts the stream
into frames with the native `split_frames`, one call per read; the `Network` drops
duplicate gossip (`Seen`), decodes the rest with `decode_many` and puts them in the
node's `Inbox` as one `Batch` per read. Both sides send a `Hello` first; a wrong version
or genesis, a first frame that is not a `Hello`, or no `Hello` in time closes the
connection. A bad frame drops that peer, never the node: every drop is logged with its
reason and counted in `Network.metrics()`.

Backpressure: past `inbox_limit` bytes waiting for the node, every peer stops being read
until the node has taken half of them. Each peer's send buffer is bounded: past
`out_soft` bytes `tx_batch` gossip to it is shed; a write that would take it past
`out_hard` drops the peer as too slow, and so does a buffer past `out_soft` while all of
them together are past `out_total`.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
from collections import Counter, deque
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

import uvloop

from echorand.aio import cancel_and_wait
from echorand.gossip import DEFAULT_SEEN, TX_BATCH_CODE, Seen
from echorand.messages import (
    MAX_FRAME,
    DecodeError,
    Hello,
    Message,
    SyncRequest,
    SyncResponse,
    decode_many,
    encode,
)
from echorand.peer import Peer, framed
from echorand.sync import BlockSource, answer

if TYPE_CHECKING:
    from echorand.sync import Syncer

log = logging.getLogger(__name__)

PROTOCOL_VERSION = 1
"""`hello.version`: peers with another version are not spoken to."""

MiB = 1 << 20
BATCH_OVERHEAD = 256
"""Bytes charged to the inbox per batch on top of its frames (the objects around them)."""

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


@dataclass(frozen=True, slots=True)
class NetConfig:
    """Everything the network is told: who we are, whom to dial, and the limits."""

    genesis_hash: bytes
    node_key: bytes
    host: str = "127.0.0.1"
    port: int = 0
    """Port to listen on; 0 takes a free one (`Network.port` tells which)."""
    peers: tuple[tuple[str, int], ...] = ()
    """Addresses dialed at start and redialed, with backoff, whenever the link drops."""
    version: int = PROTOCOL_VERSION
    max_frame: int = MAX_FRAME
    max_inbound: int = 64
    """Accepted connections (handshaking or not) beyond which new ones are refused."""
    hello_timeout: float = 5.0
    connect_timeout: float = 5.0
    backoff_min: float = 0.1
    backoff_max: float = 30.0
    out_soft: int = 4 * MiB
    """Per-peer send buffer past which `tx_batch` gossip to that peer is shed."""
    out_hard: int = 2 * MAX_FRAME + 8
    """Per-peer send buffer that a write may not exceed: the peer is dropped as too slow."""
    out_total: int = 256 * MiB
    """All send buffers together: past it, a peer whose buffer is past `out_soft` is dropped."""
    inbox_limit: int = 64 * MiB
    """Bytes waiting for the node past which no peer is read."""
    seen_capacity: int = DEFAULT_SEEN

    def __post_init__(self) -> None:
        for name in ("genesis_hash", "node_key"):
            if len(getattr(self, name)) != 32:
                raise ValueError(f"{name}: must be 32 bytes")
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
        for name in ("hello_timeout", "connect_timeout", "backoff_min", "backoff_max"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name}: must be positive")
        if self.max_inbound < 0 or self.inbox_limit < 1:
            raise ValueError("max_inbound and inbox_limit: must be positive")


@dataclass(slots=True)
class Batch:
    """Fresh gossip from one peer, in arrival order: the messages and their frames."""

    peer: Peer
    messages: list[Message]
    frames: list[bytes]
    nbytes: int


class Inbox:
    """Batches waiting for the node: past `limit` bytes, `on_full`; back at half, `on_drained`."""

    def __init__(
        self, limit: int, on_full: Callable[[], None], on_drained: Callable[[], None]
    ) -> None:
        self.limit = limit
        self.nbytes = 0
        self._on_full = on_full
        self._on_drained = on_drained
        self._full = False
        self._batches: deque[Batch] = deque()
        self._waiter: asyncio.Future[None] | None = None

    def __len__(self) -> int:
        return len(self._batches)

    @property
    def full(self) -> bool:
        return self._full

    def put(self, batch: Batch) -> None:
        self._batches.append(batch)
        self.nbytes += batch.nbytes + BATCH_OVERHEAD
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
        if not self._full and self.nbytes >= self.limit:
            self._full = True
            self._on_full()

    def get_nowait(self) -> Batch | None:
        """The oldest batch, or None when there is none."""
        if not self._batches:
            return None
        batch = self._batches.popleft()
        self.nbytes -= batch.nbytes + BATCH_OVERHEAD
        if self._full and self.nbytes <= self.limit // 2:
            self._full = False
            self._on_drained()
        return batch

    async def get(self) -> Batch:
        """The oldest batch, waiting for one."""
        while not self._batches:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        batch = self.get_nowait()
        assert batch is not None
        return batch


class SyncClient(Protocol):
    """What the network tells the sync client (`echorand.sync.Syncer`)."""

    def peer_ready(self, peer: Peer) -> None: ...
    def peer_lost(self, peer: Peer) -> None: ...
    def response(self, peer: Peer, response: SyncResponse) -> None: ...


class Network:
    """The node's peers: listening, dialing, handshakes, gossip in and out, sync requests.

    `source` answers peers' sync requests and gives our tip for the Hello (tip 0 without).
    Decoded gossip waits in `inbox` (`await receive()`); `broadcast` sends to every peer.
    """

    def __init__(self, config: NetConfig, source: BlockSource | None = None) -> None:
        self.config = config
        self.source = source
        self.seen = Seen(config.seen_capacity)
        self.inbox = Inbox(config.inbox_limit, self._pause_reading, self._resume_reading)
        self.counters: Counter[str] = Counter()
        self.syncer: SyncClient | None = None
        self.port = config.port
        self._ids = itertools.count(1)
        self._conns: set[Peer] = set()
        self._by_key: dict[bytes, Peer] = {}
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._reading_paused = False
        self._closing = False
        self._rng = random.Random()
        self._changed: asyncio.Event | None = None

    async def __aenter__(self) -> Network:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    # -- lifecycle

    async def start(self) -> None:
        """Listen on `config.host:config.port` and dial the configured peers."""
        loop = asyncio.get_running_loop()
        cfg = self.config
        self._server = await loop.create_server(
            lambda: Peer(self, outbound=False), cfg.host, cfg.port
        )
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("listening on %s:%d", cfg.host, self.port)
        for host, port in cfg.peers:
            self.connect(host, port)

    def connect(self, host: str, port: int) -> None:
        """Dial `host:port` now and whenever the link drops, with exponential backoff."""
        task = asyncio.get_running_loop().create_task(self._dial(host, port))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Stop listening and dialing, and close every connection."""
        self._closing = True
        if self._server is not None:
            self._server.close()
        await cancel_and_wait(self._tasks)
        conns = list(self._conns)
        for peer in conns:
            peer.drop("shutdown", level=logging.DEBUG)
        for peer in conns:
            await peer.closed.wait()

    # -- the node's side

    @property
    def peers(self) -> list[Peer]:
        """Peers that completed the handshake and are connected."""
        return list(self._by_key.values())

    async def receive(self) -> Batch:
        """The next batch of fresh gossip (waits for one)."""
        return await self.inbox.get()

    def receive_nowait(self) -> Batch | None:
        return self.inbox.get_nowait()

    def hello(self) -> Hello:
        """Our Hello: version, genesis, key, tip and listening port."""
        cfg = self.config
        tip = self.source.tip() if self.source is not None else 0
        return Hello(cfg.version, cfg.genesis_hash, cfg.node_key, tip, self.port)

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
                peer.drop("too_slow", "its send buffer is past out_soft and all are past out_total")
            elif peer.write(high_data, len(high), low_data, len(low)):
                written += 1
        return written

    def metrics(self) -> dict[str, int]:
        """Counters (frames and bytes in and out, drops by reason, ...) and gauges."""
        out = dict(self.counters)
        out["peers"] = len(self._by_key)
        out["connections"] = len(self._conns)
        out["inbox_bytes"] = self.inbox.nbytes
        out["inbox_batches"] = len(self.inbox)
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

    # -- connections

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
            peer = Peer(self, outbound=True, address=(host, port))
            try:
                await asyncio.wait_for(
                    loop.create_connection(lambda p=peer: p, host, port), cfg.connect_timeout
                )
            except (OSError, TimeoutError) as e:
                self.counters["dial_failures"] += 1
                log.debug("dialing %s:%d failed: %s", host, port, e or type(e).__name__)
            else:
                await peer.closed.wait()
                if peer.close_reason == "self":
                    log.info("not dialing %s:%d again: it is this node", host, port)
                    return
                if peer.ready:
                    delay = cfg.backoff_min
                other = self._by_key.get(peer.key) if peer.close_reason == "duplicate" else None
                if other is not None:
                    await other.closed.wait()
            if self._closing:
                return
            await asyncio.sleep(delay * (0.5 + self._rng.random()))
            delay = min(delay * 2, cfg.backoff_max)

    def _admit(self, peer: Peer) -> bool:
        if not peer.outbound and self._closing:
            peer.drop("shutdown", level=logging.DEBUG)
            return False
        inbound = sum(1 for p in self._conns if not p.outbound)
        if not peer.outbound and inbound >= self.config.max_inbound:
            peer.drop("peer_limit", f"{inbound} inbound connections", level=logging.INFO)
            return False
        self._conns.add(peer)
        return True

    def _hello_problem(self, hello: Hello) -> tuple[str, str] | None:
        cfg = self.config
        if hello.version != cfg.version:
            return "wrong_version", f"version {hello.version}, ours is {cfg.version}"
        if hello.genesis_hash != cfg.genesis_hash:
            return "wrong_genesis", f"genesis {hello.genesis_hash.hex()[:16]}.. is not ours"
        if hello.node_key == cfg.node_key:
            return "self", "connected to ourselves"
        return None

    def _dialer(self, peer: Peer) -> bytes:
        return self.config.node_key if peer.outbound else peer.key

    def _ready(self, peer: Peer) -> bool:
        other = self._by_key.get(peer.key)
        if other is not None:
            # Two links to one node: keep the one dialed by the smaller key (both ends
            # decide alike), or the newer one when the same side dialed both.
            if self._dialer(peer) <= self._dialer(other):
                other.drop("duplicate", f"replaced by {peer!r}", level=logging.INFO)
            else:
                peer.drop("duplicate", f"already connected as {other!r}", level=logging.INFO)
                return False
        peer.ready = True
        self._by_key[peer.key] = peer
        self.counters["handshakes"] += 1
        tip = peer.hello.tip_round if peer.hello is not None else 0
        log.info("%r connected (%s, tip %d)", peer, "out" if peer.outbound else "in", tip)
        if self._reading_paused:
            peer.pause_reading()
        if self.syncer is not None:
            self.syncer.peer_ready(peer)
        self._notify()
        return True

    def _lost(self, peer: Peer) -> None:
        self._conns.discard(peer)
        if self._by_key.get(peer.key) is peer:
            del self._by_key[peer.key]
        if peer.ready:
            if self.syncer is not None:
                self.syncer.peer_lost(peer)
            self._notify()

    def _pause_reading(self) -> None:
        self._reading_paused = True
        self.counters["inbox_full"] += 1
        for peer in self._by_key.values():
            peer.pause_reading()

    def _resume_reading(self) -> None:
        self._reading_paused = False
        for peer in self._by_key.values():
            peer.resume_reading()

    # -- frames in

    def _deliver(self, peer: Peer, frames: list[bytes]) -> None:
        fresh, keys, duplicates = self.seen.fresh(frames)
        if duplicates:
            self.counters["duplicates"] += duplicates
        if not fresh:
            return
        results = decode_many(fresh)
        if None not in keys and DecodeError not in map(type, results):
            # All gossip, all well formed (the usual read): no loop in Python.
            self.seen.add_many(cast(list[bytes], keys))
            self.counters["delivered"] += len(results)
            self.inbox.put(Batch(peer, results, fresh, sum(map(len, fresh))))
            return
        messages: list[Message] = []
        kept: list[bytes] = []
        nbytes = 0
        for frame, key, msg in zip(fresh, keys, results, strict=True):
            if isinstance(msg, DecodeError):
                peer.drop("bad_message", str(msg))
                break
            if key is not None:
                self.seen.add(key)
                messages.append(msg)
                kept.append(frame)
                nbytes += len(frame)
                continue
            self._control(peer, msg)
            if peer.close_reason:
                break
        if messages:
            self.counters["delivered"] += len(messages)
            self.inbox.put(Batch(peer, messages, kept, nbytes))

    def _control(self, peer: Peer, msg: Message) -> None:
        if isinstance(msg, SyncRequest):
            self._serve(peer, msg)
        elif isinstance(msg, SyncResponse):
            if self.syncer is None:
                peer.drop("unsolicited_sync", "a sync_response, and we are not syncing")
            else:
                self.syncer.response(peer, msg)
        else:
            peer.drop("bad_hello", "a second hello")

    def _serve(self, peer: Peer, request: SyncRequest) -> None:
        if peer._write_paused:
            # It is not reading what we sent already: no more blocks for it until it does.
            self.counters["sync_requests_ignored"] += 1
            return
        data = answer(self.source, request, self.config.max_frame)
        self.counters["sync_requests_served"] += 1
        peer.send_encoded(data)
