"""The client of a chaos run: transfers at a steady rate through the nodes' HTTP APIs, every
request and answer recorded; and the monitor, which records every change of each node's tip.

The client is `lanes` sequential processes (as in Jepsen). Lane i sends from account i
only, in nonce order, and its transaction of nonce n is always the same bytes
(`TransferSigner.sign(i, n)`), so a resubmission has the same id and "exactly once" is a
question about ids. Each tick (lanes / rate seconds) a lane sends one request to a node
drawn at random:

- the oldest transaction it had acknowledged that is not committed yet and was last sent
  `resubmit_after` seconds ago or more, again (a real client does this: a mempool is not
  durable, and a node killed before relaying loses what it acknowledged);
- else, while the load lasts, its next nonce, if fewer than `window` are uncommitted.

An answer of 200 is an acknowledgement; "already in the mempool" moves the lane on too
(that node holds it). Any other refusal, a timeout or an error is retried at a later
tick. What is committed, the lane learns by reading its account's nonce
(`GET /account/{id}`) every `read_every` seconds from a random node (the highest nonce
seen counts: chains only grow). After the load, lanes only resubmit, until all they had
acknowledged is committed or the drain ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from echorand.ledger.mempool import ALREADY_QUEUED
from echorand.node.backpressure import NODE_BUSY
from echorand.tools.chaos.checker import tip_at
from echorand.tools.chaos.history import (
    ACK,
    ERROR,
    HEAL,
    REFUSED,
    TIMEOUT,
    CommitTime,
    History,
    Op,
    TipSample,
)
from echorand.tools.devnet import Devnet, TransferSigner
from echorand.wire.transactions import NONCE_TOO_LOW, Transaction

MONITOR_EVERY = 0.25
"""Seconds between two looks at every node's tip."""
PROBE_LIMIT = 400
"""Rounds read at most per node and heal to find the node's first commit after the heal."""


@dataclass(frozen=True, slots=True)
class ClientOptions:
    lanes: int = 8
    rate: float = 16.0
    """Requests per second, all lanes together."""
    timeout: float = 2.0
    resubmit_after: float = 5.0
    window: int = 16
    read_every: float = 1.0


@dataclass(slots=True)
class Lane:
    """What one lane knows: its next nonce, what is committed, what is in flight."""

    account: int
    next: int = 0
    """The lowest nonce not acknowledged yet."""
    committed: int = 0
    """The account's nonce as last read: its transactions below it are committed."""
    sent: dict[int, float] = field(default_factory=dict)
    """Acknowledged, not yet known committed: nonce -> when last sent."""
    tried: int = 0
    """Nonces below this one were sent at least once."""
    read_at: float = -1e9

    def choose(self, now: float, loading: bool, options: ClientOptions) -> int | None:
        """The nonce to send now, or None."""
        for n in range(self.committed, self.next):
            if now - self.sent.get(n, -1e9) >= options.resubmit_after:
                return n
        if loading and self.next - self.committed < options.window:
            return self.next
        return None

    def answered(self, nonce: int, now: float, outcome: str, reason: str | None) -> None:
        if outcome == ACK or (outcome == REFUSED and reason == ALREADY_QUEUED):
            self.sent[nonce] = now
            if nonce == self.next:
                self.next += 1
        elif outcome == REFUSED and reason == NONCE_TOO_LOW:
            self.read_at = -1e9  # it is committed: read the nonce at the next tick

    def read(self, nonce: int) -> None:
        self.committed = max(self.committed, nonce)
        self.next = max(self.next, self.committed)
        for n in [n for n in self.sent if n < self.committed]:
            del self.sent[n]

    @property
    def settled(self) -> bool:
        return self.committed >= self.next


class Client:
    """The lanes and the monitor of one run, on one aiohttp session."""

    def __init__(
        self,
        net: Devnet,
        signer: TransferSigner,
        history: History,
        clock: Callable[[], float],
        options: ClientOptions,
        seed: int,
    ) -> None:
        self.net = net
        self.signer = signer
        self.history = history
        self.clock = clock
        self.options = options
        self.rng = random.Random(seed)
        self.lanes = [Lane(i) for i in range(options.lanes)]
        self.statuses: list[dict[str, Any] | None] = [None] * net.nodes
        self.load = True
        """New transactions are offered (the load); after it, lanes only resubmit."""
        self.drain_until: float | None = None
        """When lanes give up resubmitting (set when the load ends)."""
        self._ids: dict[tuple[int, int], str] = {}
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Client:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.options.timeout),
            connector=aiohttp.TCPConnector(limit=0, force_close=True),
        )
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None
        return self._session

    # --- requests ------------------------------------------------------------------------

    async def _get(self, k: int, path: str, timeout: float | None = None) -> Any:
        """The JSON of a 200 answer, else None (refused, unreachable or too slow)."""
        kwargs: dict[str, Any] = {}
        if timeout is not None:
            kwargs["timeout"] = aiohttp.ClientTimeout(total=timeout)
        try:
            async with self.session.get(self.net.url(k, path), **kwargs) as response:
                if response.status != 200:
                    return None
                return orjson.loads(await response.read())
        except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError):
            return None

    def _tx(self, lane: int, nonce: int) -> tuple[bytes, str]:
        raw = self.signer.sign(self.lanes[lane].account, nonce)
        tx_id = self._ids.get((lane, nonce))
        if tx_id is None:
            tx_id = Transaction.from_bytes(raw).id.hex()
            self._ids[(lane, nonce)] = tx_id
        return raw, tx_id

    async def submit(self, lane: int, nonce: int, k: int, resubmit: bool) -> Op:
        """POST one transaction to node k; the operation, recorded."""
        raw, tx_id = self._tx(lane, nonce)
        start = self.clock()
        outcome, reason = ERROR, None
        try:
            async with self.session.post(
                self.net.url(k, "/tx"),
                data=raw,
                headers={"Content-Type": "application/octet-stream"},
            ) as response:
                doc = orjson.loads(await response.read())
                busy = response.status == 429
            # A busy node (429) read nothing: "not now", as a refusal of the bound's room.
            item = {"accepted": False, "error": NODE_BUSY} if busy else doc["results"][0]
            if item["accepted"]:
                outcome = ACK
            else:
                outcome, reason = REFUSED, str(item["error"])
        except TimeoutError:
            outcome = TIMEOUT
        except (aiohttp.ClientError, orjson.JSONDecodeError, KeyError, IndexError, TypeError) as e:
            outcome, reason = ERROR, type(e).__name__
        op = Op(lane, nonce, tx_id, k, start, self.clock(), outcome, reason, resubmit)
        self.history.ops.append(op)
        return op

    # --- lanes ---------------------------------------------------------------------------

    async def _lane(self, i: int) -> None:
        lane = self.lanes[i]
        options = self.options
        interval = options.lanes / options.rate
        tick = self.clock() + interval * i / options.lanes
        while True:
            deadline = self.drain_until
            now = self.clock()
            if not self.load and (lane.settled or (deadline is not None and now >= deadline)):
                return
            await asyncio.sleep(max(0.0, tick - now))
            tick = max(tick + interval, self.clock())
            if self.clock() - lane.read_at >= options.read_every:
                lane.read_at = self.clock()
                doc = await self._get(self.rng.randrange(self.net.nodes), f"/account/{i}")
                if doc is not None:
                    lane.read(int(doc["nonce"]))
            nonce = lane.choose(self.clock(), self.load, options)
            if nonce is None:
                continue
            op = await self.submit(i, nonce, self.rng.randrange(self.net.nodes), nonce < lane.tried)
            lane.tried = max(lane.tried, nonce + 1)
            lane.answered(nonce, op.end, op.outcome, op.reason)

    async def run_lanes(self) -> None:
        """Run every lane until the load ends and it is settled, or the drain is over."""
        await asyncio.gather(*(self._lane(i) for i in range(len(self.lanes))))

    # --- the monitor ---------------------------------------------------------------------

    async def look(self) -> None:
        """Every node's status, once; a sample for each tip that changed."""
        docs = await asyncio.gather(
            *(self._get(k, "/status", timeout=1.0) for k in range(self.net.nodes))
        )
        now = self.clock()
        for k, doc in enumerate(docs):
            before = self.statuses[k]
            self.statuses[k] = doc
            tip = None if doc is None else doc["tip"]
            old = None if before is None else before["tip"]
            if tip != old or (before is None) != (doc is None):
                self.history.samples.append(
                    TipSample(
                        now,
                        k,
                        None if tip is None else tip["round"],
                        None if tip is None else tip["hash"],
                    )
                )

    async def monitor(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.look()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), MONITOR_EVERY)

    def highest_tip(self) -> int:
        return max((s["tip"]["round"] for s in self.statuses if s is not None), default=0)

    async def probe_commits(self) -> None:
        """For each heal and node, the node's commit times (`CommitTime`) of the rounds after
        its last tip the monitor saw before the heal, up to the first committed after it."""
        history = self.history
        samples: dict[int, list[TipSample]] = {k: [] for k in range(self.net.nodes)}
        for s in sorted(history.samples, key=lambda s: s.t):
            samples[s.node].append(s)
        for fault in history.faults:
            if fault.action != HEAL:
                continue
            for k in range(self.net.nodes):
                status = self.statuses[k]
                tip = -1 if status is None else status["tip"]["round"]
                first = max(1, tip_at(samples[k], fault.t) + 1)
                for r in range(first, min(tip, first + PROBE_LIMIT - 1) + 1):
                    doc = await self._get(k, f"/block/{r}", timeout=5.0)
                    at_ms = None if doc is None else doc.get("committed_at_ms")
                    if at_ms is None:
                        break  # committed before the node's last restart: no time known
                    t = round(at_ms / 1000 - history.wall_start, 3)
                    history.commits.append(CommitTime(k, r, t))
                    if t > fault.t:
                        break

    async def fork_evidence(self, k: int) -> int | None:
        """How many forks node k reports (`GET /forks`), None when its API has no such page."""
        doc = await self._get(k, "/forks", timeout=5.0)
        if isinstance(doc, dict):
            doc = doc.get("forks", doc.get("evidence"))
        return len(doc) if isinstance(doc, list) else None


def monotonic_clock() -> tuple[Callable[[], float], float]:
    """A clock of seconds since now (monotonic), and the wall-clock time of its 0."""
    t0, wall = time.monotonic(), time.time()
    return (lambda: time.monotonic() - t0), wall
