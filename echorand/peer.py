"""One connection to a peer: handshake, frames in and out, send limits (docs/protocol.md §12).

A `Peer` is the `asyncio.Protocol` of one TCP connection. It cuts each read into frames
with one native `split_frames` call, checks the first frame is a `Hello` of ours, and
hands the rest to its `Network`; it writes framed bytes within the peer's send limits.
Any fault in what the peer sends drops this connection, logged and counted, never more.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

from echorand.messages import DecodeError, Hello, Message, decode, encode, split_frames

if TYPE_CHECKING:
    from echorand.network import Network

log = logging.getLogger("echorand.network")

HELLO_SIZE = 79
"""Bytes in an encoded Hello: before the handshake, the only frame length accepted."""


def framed(frames: Sequence[bytes]) -> bytes:
    """`u32be length || message` for each message, concatenated."""
    parts: list[bytes] = []
    for f in frames:
        parts.append(len(f).to_bytes(4, "big"))
        parts.append(f)
    return b"".join(parts)


class Peer(asyncio.Protocol):
    """One TCP connection: the handshake, frames in and out, and its send limit."""

    def __init__(
        self, net: Network, *, outbound: bool, address: tuple[str, int] | None = None
    ) -> None:
        self.net = net
        self.outbound = outbound
        self.address = address or ("?", 0)
        self.id = next(net._ids)
        self.hello: Hello | None = None
        self.ready = False
        self.close_reason = ""
        self.closed = asyncio.Event()
        self._max_frame = net.config.max_frame
        self._transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._need = 4
        self._write_paused = False
        self._timer: asyncio.TimerHandle | None = None

    @property
    def key(self) -> bytes:
        """The peer's node key from its Hello (empty before the handshake)."""
        return self.hello.node_key if self.hello is not None else b""

    @property
    def is_open(self) -> bool:
        return self.ready and not self.close_reason

    @property
    def queued(self) -> int:
        """Bytes waiting in our send buffer for this peer."""
        t = self._transport
        return t.get_write_buffer_size() if t is not None and not t.is_closing() else 0

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
        if not self.net._admit(self):
            return
        self._write_raw(framed([encode(self.net.hello())]), count=1)
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self.net.config.hello_timeout, self._hello_timeout)

    def data_received(self, data: bytes) -> None:
        if self.close_reason:
            return
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
        if not self.ready and int.from_bytes(data[:4], "big") != HELLO_SIZE:
            # Checked before anything is buffered: a stranger gets no more than a read.
            self.drop("bad_hello", f"a first frame of {int.from_bytes(data[:4], 'big')} bytes")
            return
        try:
            frames, used = split_frames(data, self._max_frame)
        except DecodeError as e:
            self.drop("bad_frame", str(e))
            return
        rest = len(data) - used
        if rest:
            buf += memoryview(data)[used:]
            self._need = 4 + int.from_bytes(buf[:4], "big") if rest >= 4 else 4
        else:
            self._need = 4
        if frames:
            counters = self.net.counters
            counters["frames_in"] += len(frames)
            counters["bytes_in"] += used
            self._frames(frames)

    def eof_received(self) -> bool | None:
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if not self.close_reason:
            self.close_reason = "closed"
            log.info("%r closed%s", self, f": {exc}" if exc else "")
        self._buf = bytearray()
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
            self.drop("too_slow", f"{queued} bytes queued and {size} more to send")
            return False
        for chunk in chunks:
            if chunk:
                t.write(chunk)
        counters = self.net.counters
        counters["frames_out"] += count
        counters["bytes_out"] += size
        return True

    def drop(self, reason: str, detail: str = "", *, level: int = logging.WARNING) -> None:
        """Close this connection at once for `reason` (logged, counted in the metrics)."""
        if self.close_reason:
            return
        self.close_reason = reason
        self.net.counters[f"drop_{reason}"] += 1
        log.log(level, "%r dropped: %s%s", self, reason, f" ({detail})" if detail else "")
        if self._transport is not None:
            self._transport.abort()

    def pause_reading(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.pause_reading()

    def resume_reading(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.resume_reading()

    # -- internals

    def _hello_timeout(self) -> None:
        if not self.ready:
            self.drop("hello_timeout", f"no hello within {self.net.config.hello_timeout}s")

    def _frames(self, frames: list[bytes]) -> None:
        if not self.ready:
            if not self._handshake(frames[0]):
                return
            frames = frames[1:]
            if not frames:
                return
        self.net._deliver(self, frames)

    def _handshake(self, frame: bytes) -> bool:
        try:
            msg = decode(frame)
        except DecodeError as e:
            self.drop("bad_hello", str(e))
            return False
        if not isinstance(msg, Hello):
            self.drop("bad_hello", f"first message is a {type(msg).__name__}")
            return False
        problem = self.net._hello_problem(msg)
        if problem is not None:
            reason, detail = problem
            self.drop(reason, detail, level=logging.INFO if reason == "self" else logging.WARNING)
            return False
        if self._timer is not None:
            self._timer.cancel()
        self.hello = msg
        return self.net._ready(self)
