"""Helpers for the network and sync tests: loopback nodes, raw sockets, bounded waits.

Every test runs on uvloop (the node's loop) under one overall timeout; waits poll a
condition and fail with a message when the timeout passes, never assert on durations.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from echorand.net.gossip import Batch
from echorand.net.network import PROTOCOL_VERSION, NetConfig, Network, run
from echorand.net.peer import Handshake
from echorand.wire.crypto import Keypair
from echorand.wire.messages import GcProposal, Hello, HelloProof, Message, decode, encode, frame

GENESIS = bytes(range(32))
TIMEOUT = 60.0
HOSTILE_HOST = "127.0.0.2"
"""Raw test peers connect from here: a ban of their address spares the test nodes' own."""
T = TypeVar("T")


def identity(i: int) -> Keypair:
    return Keypair.from_seed(bytes([i]) * 32)


def node_key(i: int) -> bytes:
    return identity(i).public_key


def config(i: int, **options: Any) -> NetConfig:
    """The configuration of test node `i`: our genesis, key `i`, loopback, a free port."""
    options.setdefault("backoff_min", 0.02)
    options.setdefault("backoff_max", 0.2)
    return NetConfig(genesis_hash=GENESIS, identity=identity(i), **options)


def arun(main: Coroutine[Any, Any, T], timeout: float = TIMEOUT) -> T:
    """Run a test coroutine on uvloop, failing it after `timeout` seconds."""
    return run(asyncio.wait_for(main, timeout))


async def until(condition: Callable[[], object], what: str, timeout: float = TIMEOUT) -> None:
    """Poll `condition` until it holds; TimeoutError naming `what` otherwise."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise TimeoutError(f"still waiting for {what}")
        await asyncio.sleep(0.005)


def proposal(i: int, round: int = 1) -> GcProposal:
    """A distinct, well-formed gossip message (the network does not check signatures)."""
    return GcProposal(round, 2, i, (i + 1).to_bytes(32, "big"), i, bytes(64))


def hello(
    i: int, *, genesis: bytes = GENESIS, version: int = PROTOCOL_VERSION, tip: int = 0
) -> Hello:
    """A Hello in node `i`'s name (nothing proven)."""
    return Hello(version, genesis, node_key(i), bytes(32), tip, 1)


def handshake(
    i: int | Keypair, *, genesis: bytes = GENESIS, tip: int = 0, outbound: bool = True
) -> Handshake:
    """Our side of a handshake as node `i` (or with key pair `i`)."""
    key = identity(i) if isinstance(i, int) else i
    return Handshake(key, genesis, outbound=outbound, version=PROTOCOL_VERSION, tip=tip, port=1)


async def raw_peer(
    net: Network, *, rcvbuf: int | None = None, source: str = HOSTILE_HOST
) -> socket.socket:
    """A plain non-blocking socket connected to `net` from `source` (nothing sent yet)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.bind((source, 0))
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", net.port))
    return sock


async def send(sock: socket.socket, data: bytes) -> None:
    await asyncio.get_running_loop().sock_sendall(sock, data)


async def read_frame(sock: socket.socket) -> bytes:
    """One frame's message from `sock` (exactly: nothing after it is read)."""
    size = int.from_bytes(await _read_exactly(sock, 4), "big")
    return await _read_exactly(sock, size)


async def _read_exactly(sock: socket.socket, n: int) -> bytes:
    loop = asyncio.get_running_loop()
    out = bytearray()
    while len(out) < n:
        chunk = await loop.sock_recv(sock, n - len(out))
        if not chunk:
            raise ConnectionError(f"closed after {len(out)} of {n} bytes")
        out += chunk
    return bytes(out)


async def shake(sock: socket.socket, i: int | Keypair, *, tip: int = 0) -> Handshake:
    """Complete the handshake as node `i` on a raw socket: our Hello, the node's Hello, our
    proof (checking the node's). The node then counts us as a peer."""
    ours = handshake(i, tip=tip)
    await send(sock, framed(ours.hello()))
    theirs = decode(await read_frame(sock))
    assert isinstance(theirs, Hello), theirs
    await send(sock, framed(ours.proof(theirs)))
    proof = decode(await read_frame(sock))
    assert isinstance(proof, HelloProof) and ours.check(theirs, proof)
    return ours


async def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the other end sends until it closes the connection."""
    loop = asyncio.get_running_loop()
    out = bytearray()
    while True:
        try:
            chunk = await loop.sock_recv(sock, 1 << 16)
        except ConnectionResetError:
            return bytes(out)
        if not chunk:
            return bytes(out)
        out += chunk


def framed(*messages: Message) -> bytes:
    return b"".join(frame(m) for m in messages)


def raw_frame(body: bytes) -> bytes:
    return len(body).to_bytes(4, "big") + body


async def quiescent(nets: list[Network]) -> None:
    """Wait until every frame sent among `nets` has been received (nothing in flight)."""

    def settled() -> bool:
        sent = sum(n.counters["frames_out"] for n in nets)
        got = sum(n.counters["frames_in"] for n in nets)
        return sent == got and all(len(n.inbox) == 0 for n in nets)

    await until(settled, "the frames in flight to arrive")


async def consume(net: Network, sink: list[Message]) -> None:
    """A node loop that only records what it receives, in order."""
    while True:
        batch = await net.receive()
        sink.extend(batch.messages)


def encoded(messages: list[Message]) -> list[bytes]:
    return [encode(m) for m in messages]


def relay(net: Network, batch: Batch, keep: Callable[[Message], bool] = lambda _m: True) -> int:
    """Forward the messages of `batch` that `keep` approves as the node's host relays what
    verified: their frames, unchanged, to every peer but the one they came from."""
    frames = [f for f, m in zip(batch.frames, batch.messages, strict=True) if keep(m)]
    if frames:
        net.broadcast_frames(frames, exclude=batch.peer, mark=False)
    return len(frames)
