"""One connection to a peer: handshake, frames in and out, send limits (docs/protocol.md §12).

A `Peer` is the `asyncio.Protocol` of one TCP connection. The handshake is a
challenge-response: each side sends a `Hello` (its node key and a fresh nonce), then a
`HelloProof`, its node key's signature over both keys, both nonces, the genesis hash and
its role (dialer or acceptor). A peer is `ready` only once its proof verifies: nothing
is decided on the strength of a key that is not proven. Each read is then cut into frames
with one native `split_frames` call and handed to the `Network`; writes stay within the
peer's send limits. A fault in what the peer sends drops this connection, logged,
counted and charged to its address's score (`Network.penalize`), never more.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Protocol, cast

from echorand.core.validate import DropReason
from echorand.wire import crypto
from echorand.wire.constants import HANDSHAKE_TAG
from echorand.wire.messages import (
    DecodeError,
    Hello,
    HelloProof,
    Message,
    decode,
    encode,
    split_frames,
)

if TYPE_CHECKING:
    from collections import Counter

log = logging.getLogger("echorand.net.network")

NONCE_SIZE = 32
HELLO_SIZE = 111
"""Bytes in an encoded Hello: the only first frame length accepted."""
PROOF_SIZE = 65
"""Bytes in an encoded HelloProof: the only second frame length accepted."""
DIALER, ACCEPTOR = 0, 1
"""The roles in the signed handshake payload: a proof made for one role never passes for
the other, so a relay cannot hand one side's proof to the other."""


def framed(frames: Sequence[bytes]) -> bytes:
    """`u32be length || message` for each message, concatenated."""
    parts: list[bytes] = []
    for f in frames:
        parts.append(len(f).to_bytes(4, "big"))
        parts.append(f)
    return b"".join(parts)


def proof_payload(
    chain: bytes, role: int, signer: bytes, peer: bytes, signer_nonce: bytes, peer_nonce: bytes
) -> bytes:
    """What a `HelloProof` signs: `echorand/handshake || 0x00 || genesis_hash || role ||
    signer key || peer key || signer nonce || peer nonce` (role 0: the signer dialed)."""
    body = bytes([role]) + signer + peer + signer_nonce + peer_nonce
    return crypto.signing_payload(HANDSHAKE_TAG, chain + body)


class Handshake:
    """One side of the handshake, sans-IO: our `hello()`, then `proof(theirs)` for the
    peer's Hello, and `check(theirs, proof)` of the peer's proof. Tests use it to speak to
    a node as an attacker or an honest peer would."""

    def __init__(
        self,
        key: crypto.Keypair,
        chain: bytes,
        *,
        outbound: bool,
        version: int,
        tip: int = 0,
        port: int = 0,
        nonce: bytes | None = None,
    ) -> None:
        self.key = key
        self.chain = chain
        self.role = DIALER if outbound else ACCEPTOR
        self.nonce = os.urandom(NONCE_SIZE) if nonce is None else nonce
        self.version = version
        self.tip = tip
        self.port = port

    def hello(self) -> Hello:
        return Hello(self.version, self.chain, self.key.public_key, self.nonce, self.tip, self.port)

    def proof(self, theirs: Hello) -> HelloProof:
        """Our proof for the peer that sent `theirs`."""
        payload = proof_payload(
            self.chain, self.role, self.key.public_key, theirs.node_key, self.nonce, theirs.nonce
        )
        return HelloProof(self.key.sign(payload))

    def check(self, theirs: Hello, proof: HelloProof) -> bool:
        """Whether `proof` is the signature of `theirs.node_key` for this connection."""
        payload = proof_payload(
            self.chain,
            1 - self.role,
            theirs.node_key,
            self.key.public_key,
            theirs.nonce,
            self.nonce,
        )
        return crypto.verify(theirs.node_key, payload, proof.signature)


class PeerSettings(Protocol):
    """The network settings a connection reads (`echorand.net.network.NetConfig`)."""

    @property
    def identity(self) -> crypto.Keypair: ...

    @property
    def genesis_hash(self) -> bytes: ...

    @property
    def node_key(self) -> bytes: ...

    @property
    def version(self) -> int: ...

    @property
    def max_frame(self) -> int: ...

    @property
    def sync_burst(self) -> int: ...

    @property
    def out_soft(self) -> int: ...

    @property
    def out_hard(self) -> int: ...

    @property
    def hello_timeout(self) -> float: ...


class PeerNetwork(Protocol):
    """What a connection calls of its network (`echorand.net.network.Network` is one): its
    settings, counters, clock and tip, the penalty for a fault, and the steps of a peer's
    life there: admitted, its Hello judged, ready, frames delivered, read budget reserved
    and released, lost."""

    _ids: Iterator[int]

    @property
    def config(self) -> PeerSettings: ...

    @property
    def counters(self) -> Counter[str]: ...

    @property
    def port(self) -> int: ...

    def now(self) -> float: ...

    def tip(self) -> int: ...

    def penalize(self, peer: Peer, reason: DropReason, detail: str = "") -> None: ...

    def _admit(self, peer: Peer) -> bool: ...

    def _hello_problem(self, peer: Peer, hello: Hello) -> tuple[DropReason, str] | None: ...

    def _ready(self, peer: Peer) -> bool: ...

    def _deliver(self, peer: Peer, frames: list[bytes]) -> None: ...

    def _reserve(self, peer: Peer, need: int) -> None: ...

    def _release(self, peer: Peer) -> None: ...

    def _lost(self, peer: Peer) -> None: ...


class Peer(asyncio.Protocol):
    """One TCP connection: the handshake, frames in and out, and its send limit."""

    def __init__(
        self, net: PeerNetwork, *, outbound: bool, address: tuple[str, int] | None = None
    ) -> None:
        self.net = net
        self.outbound = outbound
        self.address = address or ("?", 0)
        self.id = next(net._ids)
        self.hello: Hello | None = None
        self.ready = False
        self.close_reason: DropReason | None = None
        self.closed = asyncio.Event()
        self.last_in = 0.0
        """Loop time of the last bytes received (the idle deadline)."""
        self.last_out = 0.0
        """Loop time of the last bytes queued (the keepalive)."""
        self.sync_tokens = float(net.config.sync_burst)
        self.sync_at = 0.0
        self._shake = Handshake(
            net.config.identity,
            net.config.genesis_hash,
            outbound=outbound,
            version=net.config.version,
        )
        self._max_frame = net.config.max_frame
        self._transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._need = 4
        self._write_paused = False
        self._pauses: set[str] = set()
        self._timer: asyncio.TimerHandle | None = None

    @property
    def key(self) -> bytes:
        """The peer's node key from its Hello (empty before it; proven once `ready`)."""
        return self.hello.node_key if self.hello is not None else b""

    @property
    def host(self) -> str:
        return self.address[0]

    @property
    def is_open(self) -> bool:
        return self.ready and self.close_reason is None

    def reading(self, code: int) -> bool:
        """Whether a frame of message type `code` is partly read from this peer: its head
        is in, its end is not (a large answer on a slow link)."""
        return self.ready and len(self._buf) > 4 and self._buf[4] == code

    @property
    def queued(self) -> int:
        """Bytes waiting in our send buffer for this peer."""
        t = self._transport
        return t.get_write_buffer_size() if t is not None and not t.is_closing() else 0

    @property
    def send_paused(self) -> bool:
        """Whether its send buffer is past `out_soft` (it is not reading fast enough)."""
        return self._write_paused

    def __repr__(self) -> str:
        host, port = self.address
        return f"<peer #{self.id} {host}:{port} {self.key[:4].hex() or '?'}>"

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self._transport = transport
        transport.set_write_buffer_limits(high=self.net.config.out_soft)
        if not self.outbound:
            peername = transport.get_extra_info("peername")
            if peername:
                self.address = (str(peername[0]), int(peername[1]))
        now = asyncio.get_running_loop().time()
        self.last_in = self.sync_at = now
        if not self.net._admit(self):
            return
        self._shake.tip = self.net.tip()
        self._shake.port = self.net.port
        self._write_raw(framed([encode(self._shake.hello())]), count=1)
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self.net.config.hello_timeout, self._hello_timeout)

    def data_received(self, data: bytes) -> None:
        if self.close_reason is not None:
            return
        self.last_in = self.net.now()
        buf = self._buf
        if buf:
            buf += data
            if len(buf) < self._need:
                return
            data = bytes(buf)
            buf.clear()
        elif len(data) < self._need:
            buf += data
            return
        if not self.ready:
            rest = self._handshake(data)
            if rest is None or self.close_reason is not None:
                return
            if not self.ready or not rest:
                self._keep(rest)
                return
            data = rest
        try:
            frames, used = split_frames(data, self._max_frame)
        except DecodeError as e:
            self.drop(DropReason.BAD_FRAME, str(e))
            return
        self._keep(memoryview(data)[used:])
        if frames:
            counters = self.net.counters
            counters["frames_in"] += len(frames)
            counters["bytes_in"] += used
            self.net._deliver(self, frames)

    def eof_received(self) -> bool | None:
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self.close_reason is None:
            self.close_reason = DropReason.CLOSED
            log.info("%r closed%s", self, f": {exc}" if exc else "")
        self._buf = bytearray()
        self.net._release(self)
        self.net._lost(self)
        self.closed.set()

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False

    # -- the node's side

    def send(self, msg: Message) -> bool:
        """Send one message to this peer; False when it is gone or was dropped as too slow."""
        return self.send_encoded(encode(msg))

    def send_encoded(self, data: bytes) -> bool:
        """Send one encoded message (high priority)."""
        if not 0 < len(data) <= self._max_frame:
            raise ValueError(f"message of {len(data)} bytes outside 1..{self._max_frame}")
        return self.is_open and self._write_raw(len(data).to_bytes(4, "big"), data, count=1)

    def write(self, high: bytes, nhigh: int, low: bytes = b"", nlow: int = 0) -> bool:
        """Queue framed bytes: `high` always, `low` (tx gossip) unless the buffer is past soft."""
        if not self.is_open:
            return False
        if low and self._write_paused:
            self.net.counters["shed_frames"] += nlow
            low, nlow = b"", 0
        return self._write_raw(high, low, count=nhigh + nlow)

    def _write_raw(self, *chunks: bytes, count: int) -> bool:
        t = self._transport
        size = sum(map(len, chunks))
        if t is None or t.is_closing() or not size:
            return False
        queued = t.get_write_buffer_size()
        if queued + size > self.net.config.out_hard:
            self.drop(DropReason.TOO_SLOW, f"{queued} bytes queued and {size} more to send")
            return False
        for chunk in chunks:
            if chunk:
                t.write(chunk)
        self.last_out = self.net.now()
        counters = self.net.counters
        counters["frames_out"] += count
        counters["bytes_out"] += size
        return True

    def drop(self, reason: DropReason, detail: str = "", *, level: int = logging.WARNING) -> None:
        """Close this connection at once for `reason` (logged, counted in the metrics, and
        charged to the address's score when `reason` is malicious)."""
        if self.close_reason is not None:
            return
        self.close_reason = reason
        self.net.counters[f"drop_{reason}"] += 1
        log.log(level, "%r dropped: %s%s", self, reason, f" ({detail})" if detail else "")
        if self._transport is not None:
            self._transport.abort()
        if reason.malicious:
            self.net.penalize(self, reason, detail)

    def pause_reading(self, why: str = "inbox") -> None:
        """Stop reading from this peer until `resume_reading(why)` (each `why` counts)."""
        first = not self._pauses
        self._pauses.add(why)
        if first and self._transport is not None and not self._transport.is_closing():
            self._transport.pause_reading()

    def resume_reading(self, why: str = "inbox") -> None:
        if why not in self._pauses:
            return
        self._pauses.discard(why)
        if not self._pauses and self._transport is not None and not self._transport.is_closing():
            self._transport.resume_reading()

    def abandon(self) -> None:
        """Forget a connection whose `connection_lost` will never come (a dial cancelled
        mid-connect, a shutdown that waited long enough): close it and tell the network."""
        if self.close_reason is None:
            self.close_reason = DropReason.CLOSED  # quietly: it never was a connection
        if self._transport is not None and not self._transport.is_closing():
            self._transport.abort()
        if not self.closed.is_set():
            self.connection_lost(None)

    # -- internals

    def _keep(self, rest: bytes | memoryview) -> None:
        """Buffer an incomplete frame until `_need` bytes are in; a large one reserves its
        length from the network's budget for partial frames, or waits unread for it."""
        self._buf += rest
        n = len(rest)
        self._need = 4 + int.from_bytes(self._buf[:4], "big") if n >= 4 else 4
        self.net._reserve(self, self._need if n else 0)

    def _hello_timeout(self) -> None:
        if not self.ready:
            self.drop(
                DropReason.HELLO_TIMEOUT, f"no handshake within {self.net.config.hello_timeout}s"
            )

    def _handshake(self, data: bytes) -> bytes | None:
        """Take the Hello and the proof from the front of `data`: the bytes after them
        (None once dropped). Before the handshake a frame may only be of the length of the
        one expected: a stranger gets no more than a read buffered."""
        pos = 0
        while not self.ready and len(data) - pos >= 4:
            n = int.from_bytes(data[pos : pos + 4], "big")
            expected = HELLO_SIZE if self.hello is None else PROOF_SIZE
            if n != expected:
                what = "first" if self.hello is None else "second"
                self.drop(DropReason.BAD_HELLO, f"a {what} frame of {n} bytes")
                return None
            if len(data) - pos < 4 + n:
                break
            frame = data[pos + 4 : pos + 4 + n]
            pos += 4 + n
            self.net.counters["frames_in"] += 1
            self.net.counters["bytes_in"] += 4 + n
            if not (self._on_hello(frame) if self.hello is None else self._on_proof(frame)):
                return None
        return data[pos:]

    def _on_hello(self, frame: bytes) -> bool:
        try:
            msg = decode(frame)
        except DecodeError as e:
            self.drop(DropReason.BAD_HELLO, str(e))
            return False
        if not isinstance(msg, Hello):
            self.drop(DropReason.BAD_HELLO, f"first message is a {type(msg).__name__}")
            return False
        problem = self.net._hello_problem(self, msg)
        if problem is not None:
            reason, detail = problem
            self.drop(reason, detail)
            return False
        self.hello = msg
        self._write_raw(framed([encode(self._shake.proof(msg))]), count=1)
        return True

    def _on_proof(self, frame: bytes) -> bool:
        assert self.hello is not None
        try:
            msg = decode(frame)
        except DecodeError as e:
            self.drop(DropReason.BAD_HELLO, str(e))
            return False
        if not isinstance(msg, HelloProof):
            self.drop(DropReason.BAD_HELLO, f"second message is a {type(msg).__name__}")
            return False
        if not self._shake.check(self.hello, msg):
            self.drop(DropReason.BAD_PROOF, f"not signed by {self.hello.node_key.hex()[:16]}..")
            return False
        if self.hello.node_key == self.net.config.node_key:
            self.drop(DropReason.SELF, "connected to ourselves", level=logging.INFO)
            return False
        if self._timer is not None:
            self._timer.cancel()
        return self.net._ready(self)
