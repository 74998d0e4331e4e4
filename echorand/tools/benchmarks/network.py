"""The network's receive path: bytes over loopback TCP into decoded, de-duplicated messages.

Ours is `echorand.net.network.Network` on uvloop: an `asyncio.Protocol` that cuts each read
into frames with one native `split_frames` call, de-duplicates with BLAKE3 and decodes
the rest with one `decode_many` call. The baseline, measured in the same run, on the
same loop and the same bytes, is the textbook asyncio streams reader (below, marked):
`readexactly` the length, `readexactly` the body, the same BLAKE3 de-duplication, the
same native `decode`, one frame at a time. Both receive from a plain stream writer that
sends the whole workload in one write; a run ends when the last message is decoded.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Coroutine
from typing import Any

import uvloop
from blake3 import blake3

from echorand.net.gossip import Seen
from echorand.net.network import PROTOCOL_VERSION, NetConfig, Network
from echorand.net.peer import Handshake
from echorand.tools.benchmarks import Report, Row, best_time
from echorand.tools.benchmarks.codec import make_block_message, make_votes
from echorand.wire.crypto import Keypair
from echorand.wire.messages import MAX_FRAME, GcBlock, Hello, Message, decode, frame

BASELINE = "asyncio streams, frame by frame"
GENESIS = b"\x42" * 32

# ------------------------------------------ BASELINE: asyncio streams reader


class StreamsReceiver:
    """The baseline: one coroutine per connection reading one frame per await."""

    def __init__(self) -> None:
        self.seen: set[bytes] = set()
        self.received: list[Message] = []
        self.target = 0
        self.done: asyncio.Future[None] | None = None

    async def handle(self, reader: asyncio.StreamReader, _w: asyncio.StreamWriter) -> None:
        while True:
            try:
                n = int.from_bytes(await reader.readexactly(4), "big")
            except asyncio.IncompleteReadError:
                return  # the sender closed
            if not 0 < n <= MAX_FRAME:
                raise ValueError(f"frame.length: {n}")
            body = await reader.readexactly(n)
            d = blake3(body).digest()
            if d in self.seen:
                continue
            self.seen.add(d)
            self.received.append(decode(body))
            if len(self.received) == self.target and self.done is not None:
                self.done.set_result(None)


# ---------------------------------------------------------------- harness


class Harness:
    """Both receivers on one uvloop loop, each fed by its own stream writer."""

    def __init__(self) -> None:
        self.loop = uvloop.new_event_loop()
        self.net = Network(NetConfig(genesis_hash=GENESIS, identity=Keypair.from_seed(bytes(32))))
        self.baseline = StreamsReceiver()
        self._run(self._setup())

    def _run(self, coro: Coroutine[Any, Any, None]) -> None:
        self.loop.run_until_complete(asyncio.wait_for(coro, 600))

    async def _setup(self) -> None:
        await self.net.start()
        reader, self.to_ours = await asyncio.open_connection("127.0.0.1", self.net.port)
        shake = Handshake(
            Keypair.from_seed(b"\x02" * 32), GENESIS, outbound=True, version=PROTOCOL_VERSION
        )
        self.to_ours.write(frame(shake.hello()))
        theirs = decode((await reader.readexactly(4 + 111))[4:])
        assert isinstance(theirs, Hello)
        self.to_ours.write(frame(shake.proof(theirs)))
        await self.net.wait_for_peers(1)
        self.server = await asyncio.start_server(self.baseline.handle, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        _, self.to_baseline = await asyncio.open_connection("127.0.0.1", port)

    def ours(self, data: bytes, count: int) -> None:
        """Send `data` (`count` framed messages) to the Network; wait until all are decoded."""
        self._run(self._ours(data, count))

    async def _ours(self, data: bytes, count: int) -> None:
        self.net.seen = Seen(self.net.config.seen_capacity)  # each run is all fresh
        self.to_ours.write(data)
        got = 0
        while got < count:
            got += len((await self.net.receive()).messages)

    def streams(self, data: bytes, count: int) -> None:
        """The same through the baseline reader."""
        self._run(self._streams(data, count))

    async def _streams(self, data: bytes, count: int) -> None:
        b = self.baseline
        b.seen, b.received, b.target = set(), [], count
        b.done = asyncio.get_running_loop().create_future()
        self.to_baseline.write(data)
        await b.done

    def close(self) -> None:
        async def shut() -> None:
            self.to_ours.close()
            self.to_baseline.close()
            self.server.close()
            await self.net.close()

        self._run(shut())
        self.loop.close()


def framed(messages: list[Message]) -> bytes:
    return b"".join(frame(m) for m in messages)


def make_blocks(n: int, txs: int, rng: random.Random) -> list[GcBlock]:
    """`n` distinct gc_block messages of `txs` transactions each."""
    base = make_block_message(txs, rng)
    return [GcBlock(base.round, base.step, i, base.block, base.signature) for i in range(n)]


def run(
    *,
    votes: int = 20_000,
    blocks: int = 10,
    block_txs: int = 10_000,
    repeat: int = 5,
    min_seconds: float = 0.05,
) -> Report:
    """Times receiving `votes` votes and `blocks` blocks of `block_txs` txs (ours, baseline)."""
    if votes < 1 or blocks < 1 or block_txs < 0:
        raise ValueError("votes and blocks: at least 1; block_txs: at least 0")
    rng = random.Random(20240602)
    timing: dict[str, Any] = {"repeat": repeat, "min_seconds": min_seconds}
    workloads = [
        (f"receive {votes} bba_signature", framed(list(make_votes(votes, rng))), votes),
        (
            f"receive {blocks} gc_block of {block_txs} txs",
            framed(list(make_blocks(blocks, block_txs, rng))),
            blocks,
        ),
    ]
    report = Report(title="network: loopback TCP into decoded messages (uvloop)")
    harness = Harness()
    try:
        for name, data, count in workloads:
            ours = best_time(lambda d=data, c=count: harness.ours(d, c), **timing)
            base = best_time(lambda d=data, c=count: harness.streams(d, c), **timing)
            report.add(
                Row(
                    name=name,
                    seconds=ours,
                    items=count,
                    baseline=BASELINE,
                    baseline_seconds=base,
                    extra={"bytes": len(data), "MB_per_s": round(len(data) / ours / 1e6, 1)},
                )
            )
    finally:
        harness.close()
    return report
