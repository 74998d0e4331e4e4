"""Sync: a node that is new or behind fetches certified blocks (docs/protocol.md §12).

Server side, `answer` serves a `SyncRequest` from a `BlockSource` (the node's ledger):
the stored encodings, copied straight into the response and never decoded, capped at
MAX_SYNC_BLOCKS, the frame limit and the asker's send budget. Client side, the `Syncer`
learns each peer's tip claim from its Hello (and from the node, `note_tip`), asks the
peers ahead of us for the next blocks in turn, hands each block and its certificate to
the node's `check_and_apply` (which checks the certificate against the round's committee,
by batch verification, and applies the block), drops a peer that serves a bad one, and
tells the node when it has caught up so that it joins consensus at the tip.

A claim is a hint, believed only as far as the peer serves certified blocks: a peer that
answers a request with nothing while it claims more (`false_tip`) loses its claim, and
one that does not answer in time (`sync_timeout`) is not counted for the timeout (it
neither keeps the node from being caught up nor is asked); both are charged for it
(`Network.penalize`). A peer that claims round 2^62 and never answers is banned at its
second timeout.

A slow peer does not hold the catch-up for a timeout: a request unanswered for `hedge`
seconds is asked of the next peer ahead too, and the first answer is taken. The other
request stays open until its peer answers (the answer is dropped unread) or its timeout
(charged as any). A link that crawls (a full `tbf` queue, a congested path) then costs
the node `hedge`, not `sync_timeout`, per request: docs/protocol.md §12.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from echorand.core.validate import DropReason
from echorand.net.aio import cancel_and_wait
from echorand.wire.messages import (
    MAX_FRAME,
    MAX_SYNC_BLOCKS,
    Block,
    Certificate,
    FinalProof,
    SyncRequest,
    SyncResponse,
)

if TYPE_CHECKING:
    from collections import Counter

    from echorand.net.peer import Peer

log = logging.getLogger(__name__)

CertifiedBlock = tuple[Block, Certificate]
COOLDOWN_SLACK = 0.01
"""Seconds after a peer's cool-down that the syncer looks again."""
SYNC_RESPONSE_CODE = SyncResponse.CODE
RESPONSE_HEAD = 5
"""`0x22 || count u32` before the blocks of a `sync_response` (docs/protocol.md §6)."""

MAX_ASKS = 3
"""Requests in flight for one catch-up fetch, hedges included: a node whose own link is
slow would otherwise pull one answer from every peer ahead over it at once."""
FORK_CHECK_INTERVAL = 5.0
"""Seconds between two fork checks with one peer."""
MAX_FORK_BLOCKS = 1024
"""Blocks of a peer's chain fetched for one fork check (the undo window is far shorter)."""


@dataclass(slots=True)
class _Ask:
    """A request in flight to one peer: `future` is its answer, or None when the peer is
    gone or `timer` (its timeout) fired first. `abandoned`: another peer answered it; the
    answer, when it comes, is dropped unread."""

    first: int
    count: int
    future: asyncio.Future[SyncResponse | None]
    timer: asyncio.TimerHandle | None = None
    abandoned: bool = field(default=False)


class ForkSuspected(Exception):
    """Raised by `check_and_apply`: the block does not extend our tip, so the peer may hold
    another chain (PROTOCOL §6). The syncer then fetches that chain for the node's fork
    choice instead of dropping the peer."""


class BlockSource(Protocol):
    """The node's ledger as sync sees it: the tip and the stored encodings of certified
    blocks by round."""

    def tip(self) -> int:
        """The round of the last applied block (0 before the first)."""
        ...

    def encoded_blocks(
        self, from_round: int, count: int, max_bytes: int | None = None
    ) -> Sequence[tuple[bytes, bytes]]:
        """The `(block, certificate)` encodings of up to `count` rounds from `from_round`
        on, in round order, stopping before their total passes `max_bytes` (the first
        always included)."""
        ...

    def final_proof(self, first: int, last: int) -> bytes | None:
        """The encoded `final_proof` of our last final block when its round is in
        `first..last` (sent after a sync answer with those blocks), else None."""
        ...


def answer(
    source: BlockSource | None,
    request: SyncRequest,
    budget: int = MAX_FRAME,
    max_frame: int = MAX_FRAME,
) -> bytes:
    """The encoded `SyncResponse` to `request`: consecutive blocks from `from_round`.

    At most `request.count`, MAX_SYNC_BLOCKS and what we have, and no more bytes than
    `budget` (the first block at least, when it fits in `max_frame`): the stored
    encodings, concatenated without decoding (they are canonical, so this is the
    response's one encoding). Empty when we have nothing from `from_round` on.
    """
    pairs: Sequence[tuple[bytes, bytes]] = ()
    if source is not None and request.from_round >= 1:
        count = min(request.count, MAX_SYNC_BLOCKS, source.tip() - request.from_round + 1)
        if count > 0:
            room = min(budget, max_frame) - RESPONSE_HEAD
            pairs = source.encoded_blocks(request.from_round, count, room)[:count]
            if pairs and RESPONSE_HEAD + len(pairs[0][0]) + len(pairs[0][1]) > max_frame:
                pairs = ()
    head = bytes([SYNC_RESPONSE_CODE]) + len(pairs).to_bytes(4, "big")
    return b"".join([head, *(part for pair in pairs for part in pair)])


def answered_blocks(data: bytes) -> int:
    """How many blocks an encoded `answer` carries (its head's count)."""
    return int.from_bytes(data[1:RESPONSE_HEAD], "big")


def shape_problem(blocks: Sequence[CertifiedBlock], first: int, count: int) -> str | None:
    """What is wrong with a response to `SyncRequest(first, count)`, before any check of
    signatures: too many blocks, a round out of sequence, a certificate for another round."""
    if len(blocks) > count:
        return f"{len(blocks)} blocks for a request of {count}"
    for i, (block, cert) in enumerate(blocks):
        if block.round != first + i:
            return f"block {i} is of round {block.round}, expected {first + i}"
        if cert.round != block.round:
            return f"certificate of round {cert.round} for the block of round {block.round}"
    return None


class SyncNetwork(Protocol):
    """What the syncer uses of the network (`echorand.net.network.Network` is one): its
    clock, its counters, the penalty for a peer's fault, and where to register."""

    @property
    def counters(self) -> Counter[str]: ...

    def now(self) -> float: ...

    def penalize(self, peer: Peer, reason: DropReason, detail: str = "") -> None: ...

    def attach_syncer(self, syncer: Syncer) -> None: ...


class Syncer:
    """Fetches certified blocks from peers ahead of us until we are at the best known tip.

    `check_and_apply(block, cert)` returns False (or raises) when the certificate does not
    certify the block; the peer that sent it is dropped. `on_caught_up(tip)` is called when
    no known peer is ahead of us any more (after the first peer's Hello, and after each
    catch-up); `on_behind(target)` when a peer turns out to be ahead again. A peer whose
    claim turns out false (an empty answer, no answer) loses it and is charged for it.
    """

    def __init__(
        self,
        net: SyncNetwork,
        check_and_apply: Callable[[Block, Certificate], bool],
        *,
        tip: Callable[[], int],
        on_caught_up: Callable[[int], None] | None = None,
        on_behind: Callable[[int], None] | None = None,
        on_fork: Callable[[Peer, list[CertifiedBlock]], bool] | None = None,
        fork_start: Callable[[], int] | None = None,
        hash_at: Callable[[int], bytes | None] | None = None,
        batch: int = MAX_SYNC_BLOCKS,
        timeout: float = 20.0,
        hedge: float = 2.0,
        on_error: Callable[[Exception], None] | None = None,
        local_errors: tuple[type[Exception], ...] = (OSError,),
    ) -> None:
        """`on_fork(peer, blocks)`: the certified blocks of `peer` from `fork_start()` (the
        first round the node could roll back) to its tip, when it may hold another chain;
        True when the node follows that chain afterwards, False when it kept its own.
        `hash_at(round)`: the hash of our block of that round, to compare a fetched block
        that consensus applied meanwhile. `hedge`: seconds a catch-up request waits before
        the next peer ahead is asked too. `on_error(e)`: the sync loop ended on an error
        from the node (a full disk while it applied or switched chains): the node must stop
        or restart it, since a node that is not caught up would wait for it for ever.
        `local_errors`: what `check_and_apply` raises for a failure of the node's own (its
        disk), not of the block: it ends the loop as above, and the peer is not blamed (a
        node whose disk filled dropped and banned every peer it synced from)."""
        if not 1 <= batch <= MAX_SYNC_BLOCKS:
            raise ValueError(f"batch: must be in 1..{MAX_SYNC_BLOCKS}, got {batch}")
        if timeout <= 0:
            raise ValueError(f"timeout: must be positive, got {timeout}")
        if hedge <= 0:
            raise ValueError(f"hedge: must be positive, got {hedge}")
        self.net = net
        self.check_and_apply = check_and_apply
        self.tip = tip
        self.on_caught_up = on_caught_up
        self.on_behind = on_behind
        self.on_fork = on_fork
        self.fork_start = fork_start
        self.hash_at = hash_at
        self.batch = batch
        self.timeout = timeout
        self.hedge = hedge
        self.on_error = on_error
        self.local_errors = local_errors
        self.applied = 0
        """Blocks applied by sync since the start."""
        self._claims: dict[Peer, int] = {}
        self._cooldown: dict[Peer, float] = {}
        self._asks: dict[Peer, _Ask] = {}
        """The requests in flight, at most one per peer."""
        self._late: dict[Peer, int] = {}
        """Per peer, requests that timed out and may still be answered."""
        self._wake = asyncio.Event()
        self._turn = 0
        self._caught_up = False
        self._finals: dict[Peer, FinalProof] = {}
        """Each peer's latest `final_proof` (unchecked: the fork choice checks it)."""
        self._suspects: dict[Peer, float] = {}
        """Peers to check for another chain, and when each was last checked."""
        self._task: asyncio.Task[None] | None = None
        net.attach_syncer(self)

    # -- lifecycle

    def start(self) -> None:
        """Run the sync loop on the running event loop."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        if self._task is not None:
            await cancel_and_wait([self._task])
            self._task = None
        for ask in self._asks.values():
            if ask.timer is not None:
                ask.timer.cancel()
        self._asks.clear()

    @property
    def target(self) -> int:
        """The highest tip claimed by a connected peer that is not cooling down after a
        request it left unanswered."""
        now = self.net.now()
        return max(
            (c for p, c in self._claims.items() if p.is_open and self._cooldown.get(p, 0.0) <= now),
            default=0,
        )

    @property
    def behind(self) -> bool:
        return self.target > self.tip()

    # -- told by the node and the network

    def note_tip(self, peer: Peer, tip: int) -> None:
        """`peer` claims the block of round `tip` (it sent a message of round tip+1): a hint,
        checked by asking it."""
        if peer in self._claims and tip > self._claims[peer]:
            self._claims[peer] = tip
            self.wake()

    def peer_ready(self, peer: Peer) -> None:
        self._claims[peer] = peer.hello.tip_round if peer.hello is not None else 0
        self.wake()

    def suspect_fork(self, peer: Peer) -> None:
        """`peer` sent a message of our round on another H(B_{r-1}): check its chain."""
        if self.on_fork is None or self.fork_start is None:
            return
        now = asyncio.get_running_loop().time()
        last = self._suspects.get(peer)
        if last is None or (last >= 0 and now - last >= FORK_CHECK_INTERVAL):
            # Due (< 0) until `_check_forks` takes it. (It used to keep `last` here, which
            # is not due: a peer was compared once per connection, and a node that forked
            # from it after that first check stayed on its own chain for good.)
            self._suspects[peer] = -1.0
            self.wake()

    def final_proof(self, peer: Peer, proof: FinalProof) -> None:
        """`peer` says its block `proof.round` is final: kept (its latest only) for the next
        comparison of its chain with ours."""
        known = self._finals.get(peer)
        if known is None or proof.round > known.round:
            self._finals[peer] = proof

    def final_of(self, peer: Peer) -> FinalProof | None:
        """The latest `final_proof` `peer` sent, if any."""
        return self._finals.get(peer)

    def peer_lost(self, peer: Peer) -> None:
        self._finals.pop(peer, None)
        self._suspects.pop(peer, None)
        self._claims.pop(peer, None)
        self._cooldown.pop(peer, None)
        self._late.pop(peer, None)
        ask = self._asks.pop(peer, None)
        if ask is not None:
            self._settle(ask, None)
        self.wake()

    def response(self, peer: Peer, response: SyncResponse) -> None:
        """A response from `peer`: the answer to our request, a late one, or unsolicited.

        Responses carry no request id: one is the answer when it comes from the peer we
        asked and starts at the round we asked for (or is empty).
        """
        ask = self._asks.get(peer)
        if ask is not None:
            blocks = response.blocks
            if not blocks or blocks[0][0].round == ask.first or not self._late.get(peer):
                del self._asks[peer]
                if ask.abandoned:
                    self.net.counters["sync_hedged_late"] += 1  # answered elsewhere first
                    self.wake()  # the peer may be asked again
                self._settle(ask, None if ask.abandoned else response)
                return
        if self._late.get(peer):
            self._late[peer] -= 1  # the answer to a request that timed out: too late
            return
        peer.drop(DropReason.UNSOLICITED_SYNC, "a sync_response we did not ask for")

    # -- the loop

    def wake(self) -> None:
        """Run the sync loop now: see whether a peer is ahead, or holds another chain."""
        self._wake.set()

    async def _run(self) -> None:
        try:
            await self._loop()
        except Exception as e:
            log.exception("sync: stopped by an error")
            if self.on_error is None:
                raise
            self.on_error(e)

    async def _loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self._check_forks()
            await self._catch_up()
            connected = any(p.is_open for p in self._claims)
            if not self._caught_up and connected and not self.behind:
                self._caught_up = True
                tip = self.tip()
                log.info("sync: caught up at round %d", tip)
                if self.on_caught_up is not None:
                    self.on_caught_up(tip)

    async def _catch_up(self) -> None:
        while self.behind:
            if any(t < 0 for t in self._suspects.values()):
                # a peer ahead of us on another chain: compare chains, do not wait for it
                await self._check_forks()
                continue
            if self._caught_up:
                self._caught_up = False
                log.info("sync: behind, peers are at round %d", self.target)
                if self.on_behind is not None:
                    self.on_behind(self.target)
            peer, wait = self._pick()
            if peer is not None:
                await self._fetch(peer)
                continue
            # Every peer ahead of us timed out lately: wait for one to cool down.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)
            self._wake.clear()

    def _pick(self) -> tuple[Peer | None, float | None]:
        """The next peer ahead of us in turn that has no request of ours in flight; else None
        and how long until one cools down (None: until a request in flight ends)."""
        tip = self.tip()
        now = asyncio.get_running_loop().time()
        ahead = sorted(
            (p for p, c in self._claims.items() if c > tip and p.is_open), key=lambda p: p.id
        )
        ready = [p for p in ahead if self._cooldown.get(p, 0.0) <= now and p not in self._asks]
        if not ready:
            cooling = [self._cooldown[p] for p in ahead if self._cooldown.get(p, 0.0) > now]
            return None, max(0.0, min(cooling) - now) if cooling else None
        self._turn += 1
        return ready[self._turn % len(ready)], 0.0

    async def _fetch(self, peer: Peer) -> None:
        """The next blocks after our tip from `peer`, and from the next peer ahead too each
        time no answer came for `hedge` seconds (or a request ended unanswered), MAX_ASKS
        in flight at most; the first answer is applied, the others are left to come and be
        dropped."""
        first = self.tip() + 1
        asks: dict[asyncio.Future[SyncResponse | None], tuple[Peer, _Ask]] = {}
        nxt: Peer | None = peer
        while True:
            claim = -1 if nxt is None else self._claims.get(nxt, -1)
            if nxt is not None and claim >= first:
                ask = self._ask(nxt, first, min(self.batch, claim - first + 1))
                if ask is not None:
                    if asks:
                        self.net.counters["sync_hedges"] += 1
                    asks[ask.future] = (nxt, ask)
            if not asks:
                return
            done, _ = await asyncio.wait(
                set(asks), timeout=self.hedge, return_when=asyncio.FIRST_COMPLETED
            )
            ended = [asks.pop(f) for f in done]
            answered = [(p, a) for p, a in ended if a.future.result() is not None]
            if answered:
                for _other, pending in asks.values():
                    pending.abandoned = True
                (peer, ask), *_ = answered
                response = ask.future.result()
                assert response is not None
                await self._apply(peer, response.blocks, first, ask.count)
                return
            nxt = self._pick()[0] if len(asks) < MAX_ASKS else None

    async def _request(self, peer: Peer, first: int, count: int) -> Sequence[CertifiedBlock] | None:
        """Ask `peer` for `count` blocks from `first` (after the request of ours it may still
        have in flight); its answer, None when it has none for us (gone, or silent until
        the timeout)."""
        while (pending := self._asks.get(peer)) is not None:
            await asyncio.wait({pending.future})  # never cancels it
        ask = self._ask(peer, first, count)
        if ask is None:
            return None
        await asyncio.wait({ask.future})  # a cancelled wait leaves the ask to its timer
        response = ask.future.result()
        return None if response is None else response.blocks

    def _ask(self, peer: Peer, first: int, count: int) -> _Ask | None:
        """Send `peer` a request (its answer: the returned ask's future); None when it is
        gone or already has a request of ours in flight."""
        if peer in self._asks:
            return None
        loop = asyncio.get_running_loop()
        ask = _Ask(first, count, loop.create_future())
        if not peer.send(SyncRequest(first, count)):
            self._claims.pop(peer, None)  # gone; the network tells us soon
            return None
        ask.timer = loop.call_later(self.timeout, self._timed_out, peer, ask)
        self._asks[peer] = ask
        return ask

    def _settle(self, ask: _Ask, response: SyncResponse | None) -> None:
        if ask.timer is not None:
            ask.timer.cancel()
        if not ask.future.done():
            ask.future.set_result(response)

    def _timed_out(self, peer: Peer, ask: _Ask) -> None:
        """`peer` left the request unanswered for `timeout`: cooled down, its answer, if it
        still comes, dropped as late, and charged, unless the answer is arriving (partly
        read): then the link is slow, likely ours, and charging every peer we ask would
        ban them all."""
        if self._asks.get(peer) is not ask:
            return
        del self._asks[peer]
        arriving = peer.reading(SYNC_RESPONSE_CODE)
        log.info(
            "sync: %r did not answer for rounds %d.. in %ss%s",
            peer,
            ask.first,
            self.timeout,
            " (its answer was arriving: not charged)" if arriving else "",
        )
        self.net.counters["sync_slow_answers" if arriving else "sync_timeouts"] += 1
        loop = asyncio.get_running_loop()
        self._cooldown[peer] = loop.time() + self.timeout
        # Its claim counts again then (the kick a little later: a timer may fire a
        # millisecond before the clock reads its time, and find it still cooling).
        loop.call_later(self.timeout + COOLDOWN_SLACK, self.wake)
        self._late[peer] = self._late.get(peer, 0) + 1
        if not arriving:
            self.net.penalize(peer, DropReason.SYNC_TIMEOUT, f"rounds {ask.first}.. unanswered")
        self._settle(ask, None)
        self.wake()

    async def _check_forks(self) -> None:
        """Fetch the chain of each suspected peer from the node's `fork_start()` to its tip
        (checked for shape only) and hand it to `on_fork`."""
        for peer in [p for p, t in self._suspects.items() if t < 0]:
            self._suspects[peer] = asyncio.get_running_loop().time()
            if not peer.is_open or self.on_fork is None or self.fork_start is None:
                continue
            blocks = await self._chain_of(peer, self.fork_start())
            if blocks:
                self.net.counters["fork_checks"] += 1
                if not self.on_fork(peer, blocks) and peer in self._claims:
                    # it stays on another chain: its tip is not ahead on ours
                    self._claims[peer] = min(self._claims[peer], self.tip())

    async def _chain_of(self, peer: Peer, first: int) -> list[CertifiedBlock]:
        """`peer`'s certified blocks from `first` to its tip (answers may be cut short by
        their byte budget: asked again from where each stopped), at most MAX_FORK_BLOCKS.

        It ends at an empty answer, or at a short one past the tip the peer claimed when
        the fetch began: a chain that grows faster than one request's trip would never
        give an empty answer."""
        claimed = self._claims.get(peer, 0)
        out: list[CertifiedBlock] = []
        while len(out) < MAX_FORK_BLOCKS:
            start = first + len(out)
            blocks = await self._request(peer, start, self.batch)
            if not blocks:
                return out
            problem = shape_problem(blocks, start, self.batch)
            if problem is not None:
                peer.drop(DropReason.BAD_SYNC_RESPONSE, problem)
                return []
            out.extend(blocks)
            if len(blocks) < self.batch and first + len(out) > claimed:
                return out
        return out

    async def _apply(
        self, peer: Peer, blocks: Sequence[CertifiedBlock], first: int, count: int
    ) -> None:
        if not blocks:
            # It has nothing after our tip: it claimed what it does not have.
            self._unbelieved(peer, first, DropReason.FALSE_TIP)
            return
        problem = shape_problem(blocks, first, count)
        if problem is not None:
            peer.drop(DropReason.BAD_SYNC_RESPONSE, problem)
            return
        for block, cert in blocks:
            tip = self.tip()
            if block.round <= tip:
                # applied meanwhile, by consensus: the same block, or the peer's chain parts
                # from ours there (compare the chains, as for a block that does not extend)
                if self.hash_at is not None and self.hash_at(block.round) != block.hash:
                    self.suspect_fork(peer)
                    return
                continue
            if block.round > tip + 1 or not self._check(peer, block, cert):
                return
            self.applied += 1
            self.net.counters["sync_blocks"] += 1
            if peer in self._claims:
                self._claims[peer] = max(self._claims[peer], block.round)
            await asyncio.sleep(0)  # let the network breathe between blocks

    def _check(self, peer: Peer, block: Block, cert: Certificate) -> bool:
        try:
            ok = self.check_and_apply(block, cert)
        except ForkSuspected:
            # Not ahead on our chain: stop syncing from it until its chain was compared.
            now = asyncio.get_running_loop().time()
            self._cooldown[peer] = now + FORK_CHECK_INTERVAL
            self.suspect_fork(peer)
            return False
        except self.local_errors:
            raise  # ours, not the peer's: the loop ends and reports it (`on_error`)
        except Exception as e:
            log.exception("sync: checking the block of round %d from %r failed", block.round, peer)
            peer.drop(
                DropReason.SYNC_BAD_CERTIFICATE, f"round {block.round}: {type(e).__name__}: {e}"
            )
            return False
        if not ok:
            peer.drop(DropReason.SYNC_BAD_CERTIFICATE, f"round {block.round}")
        return ok

    def _unbelieved(self, peer: Peer, first: int, reason: DropReason) -> None:
        """`peer` has nothing from round `first` on, which it claimed: its claim falls to
        what it served, and it is charged for the claim."""
        claimed = self._claims.get(peer, 0)
        if claimed >= first:
            self._claims[peer] = first - 1
            self.net.penalize(peer, reason, f"claimed round {claimed}, has nothing at {first}")
