"""The node: the sans-IO consensus core wired to real IO on uvloop (docs/protocol.md §15).

`Node` is the node's life cycle and loops; each of its other jobs is a piece of its own:

- `echorand.core.executor`: the one driver of the core, shared with the simulator. The node's
  `Host` is `echorand.node.host.NodeHost` (durable sends, the network, timers on the loop's
  monotonic clock, commits to the LMDB ledger, fork evidence, final blocks, the halt).
- `echorand.node.admission`: transactions from peers and the API into the mempool.
- `echorand.node.payloads`: a producer's payload, and the check of a proposed block's.
- `echorand.core.forkchoice`: certified blocks from peers, the suspicion of another chain, the
  fork choice (PROTOCOL §6): the one driver, shared with the simulator, run through the
  node's `echorand.node.chains.NodeChains` on its ledger.
- `echorand.node.status`: `GET /status` and `/metrics`.
- `echorand.node.launch`: the `echorand node` command.

Here: the ledger, reopened at its last committed block after a crash and read by the core
through `LedgerView` (`echorand.node.view`); the consensus messages of the network,
verified in batches (large ones off the event loop, into a bounded cache the core's own
check then finds), those of the next rounds held in `Held` (bounded in bytes per peer and
in all); the sync loop.
Start-up: open the ledger, listen and dial, sync to the peers' tip, wait (a bounded time)
for `min_peers` peers, then join consensus at the tip. Without configured peers the node
starts alone at once. Stop: within a bounded time (STOP_TIMEOUT per part).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Sequence

from echorand.core.consensus import Consensus
from echorand.core.events import CertifiedBlocksReceived, Event, ForkEvidence, MessagesReceived
from echorand.core.executor import Executor
from echorand.core.forkchoice import ForkChoice
from echorand.core.signed import SignedLog
from echorand.core.validate import (
    ACCEPTED,
    CachingVerifier,
    Checks,
    DropReason,
    NativeVerifier,
    SignatureCheck,
    check_fields,
)
from echorand.ledger.genesis import Genesis
from echorand.ledger.ledger import DiskFullError, Ledger
from echorand.ledger.mempool import Mempool
from echorand.net.aio import cancel_and_wait
from echorand.net.gossip import Held
from echorand.net.network import Batch, NetConfig, Network
from echorand.net.peer import Peer
from echorand.net.sync import CertifiedBlock, ForkSuspected, Syncer
from echorand.node.admission import Admission, VerifiedTxs
from echorand.node.backpressure import Backpressure, Busy
from echorand.node.chains import NodeChains
from echorand.node.chains import log as chains_log
from echorand.node.config import NodeConfig, load_keys
from echorand.node.host import NodeHost
from echorand.node.metrics import Metric
from echorand.node.payloads import Payloads
from echorand.node.status import metrics, status
from echorand.node.view import LedgerView, ledger_tip, round_context
from echorand.protocol.committee import RoundContext
from echorand.wire import crypto
from echorand.wire.crypto import Keypair
from echorand.wire.keys import load_keypair
from echorand.wire.messages import (
    Block,
    Certificate,
    ConsensusMessage,
    FinalProof,
    Message,
    Transaction,
)
from echorand.wire.seal import Passphrase

log = logging.getLogger(__name__)

SIGNATURE_CACHE = 1 << 15
"""Signature answers remembered (about 20 MB): those verified off the loop until the core
asks, and a round's carried certificates."""
OFF_LOOP = 64
"""Signatures from which a batch is verified off the event loop (fewer: on it, at once)."""
MAX_READ_BATCHES = 64
"""Network batches handled together (one verification batch for all their messages)."""
HELD_WINDOW = 2
"""Rounds ahead of the node's whose messages are kept until it gets there."""
HELD_LIMIT = 64 << 20
HELD_PER_PEER = 8 << 20
"""Bytes of held messages in all, and of one peer (docs/protocol.md §12)."""
EXIT_DISK_FULL = 75
"""`echorand node`'s exit status when the disk filled up (EX_TEMPFAIL: start it again once
there is room; the ledger is at its last committed block)."""
STOP_TIMEOUT = 5.0
"""Seconds the stop waits for each part (tasks, API, sync, network) before going on."""


def _malicious(reason: str) -> bool:
    """Whether a stats key of the core is a malicious `DropReason` (logged as a warning)."""
    try:
        return DropReason(reason).malicious
    except ValueError:
        return False


class Node:
    """One node: `await Node(config).run()` until `stop()` (or SIGTERM/SIGINT)."""

    def __init__(self, config: NodeConfig, passphrase: Passphrase | None = None) -> None:
        self.config = config
        self.genesis = Genesis.load(config.genesis)
        self.params = self.genesis.params
        self.keys, self.plaintext_keys = load_keys(config, self.genesis, passphrase)
        self.ledger = Ledger.open(config.data_dir, self.genesis, durable=config.durable)
        log.info(
            "ledger %s at round %d; %d local accounts",
            config.data_dir,
            self.ledger.tip,
            len(self.keys),
        )
        self.view = LedgerView(self.ledger)
        self.counters: Counter[str] = Counter()
        self.admission = Admission(config, self.ledger, self.counters)
        self.payloads = Payloads(self.ledger, self.admission, config.block_max_txs)
        self.host = NodeHost(self.ledger, self.admission, self.payloads, self._fail, self.counters)
        self.host.on_halt = self._on_halt
        self.verifier = CachingVerifier(NativeVerifier(), capacity=SIGNATURE_CACHE)
        chains = NodeChains(
            self.ledger, self.params, self.view, self.verifier, self.host, self.admission, self
        )
        self.fork_choice: ForkChoice[Peer | None] = ForkChoice(chains, self.counters, chains_log)
        """The fork choice against peers' chains, and certified blocks applied before the
        core runs (`echorand.core.forkchoice`)."""
        self.executor: Executor | None = None
        """The driver of the running core (None: not joined, switching chains, stopped)."""
        self.fatal: BaseException | None = None
        self.started_at = time.time()
        self.net: Network | None = None
        self.syncer: Syncer | None = None
        self.api_port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop = asyncio.Event()
        self._caught_up = asyncio.Event()
        self.held = Held(HELD_LIMIT, HELD_PER_PEER, HELD_WINDOW)
        self._released = self.ledger.tip
        """The last round whose held messages went back to the inbox."""
        self._stats_before: Counter[str] = Counter()
        self._tasks: list[asyncio.Task[None]] = []

    # --- the pieces' state, by the names the API and the tests read ---------------------

    @property
    def core(self) -> Consensus | None:
        return self.executor.core if self.executor is not None else None

    @property
    def mempool(self) -> Mempool:
        return self.admission.mempool

    @property
    def verified(self) -> VerifiedTxs:
        return self.admission.verified

    @property
    def forks(self) -> deque[ForkEvidence]:
        return self.host.forks

    @property
    def halted(self) -> str | None:
        return self.host.halted

    @property
    def commit_times(self) -> OrderedDict[int, int]:
        return self.host.commit_times

    @property
    def caught_up(self) -> bool:
        return self._caught_up.is_set()

    def status(self) -> dict[str, object]:
        return status(self)

    def metrics(self) -> list[Metric]:
        return metrics(self)

    @property
    def backpressure(self) -> Backpressure:
        """Admission control (`echorand.node.backpressure`)."""
        return self.admission.backpressure

    def busy(self, wanted: int = 1, client: str | None = None) -> Busy | None:
        """Whether the API should refuse a request of `wanted` transactions from `client`
        now (429)."""
        return self.admission.busy(wanted, client)

    async def submit(
        self,
        transactions: Sequence[Transaction],
        source: Peer | None = None,
        client: str | None = None,
    ) -> list[str | None]:
        """Admit transactions (from a peer, or the API's `client`) and relay the admitted
        ones."""
        return await self.admission.submit(transactions, source, client)

    def now_ms(self) -> int:
        """The core's time: integer ms of the loop's monotonic clock since the start."""
        return self.host.now_ms()

    # --- life cycle ----------------------------------------------------------------

    async def run(self) -> None:
        """Run until `stop()`; the ledger is closed on the way out."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        self.host.start(loop)
        cfg = self.config
        if self.plaintext_keys:
            log.warning(
                "validator keys not encrypted (plaintext, for devnets; seal them with "
                "`echorand keys --encrypt`): %s",
                ", ".join(self.plaintext_keys),
            )
        self.net = Network(
            NetConfig(
                genesis_hash=self.genesis.hash,
                identity=Keypair.generate() if cfg.node_key is None else load_keypair(cfg.node_key),
                host=cfg.host,
                port=cfg.port,
                peers=cfg.peers,
                pinned=cfg.pinned,
                max_inbound=cfg.max_inbound,
                max_per_address=cfg.max_per_address,
                idle_timeout=cfg.idle_timeout,
                ban_base=cfg.ban_seconds,
                backoff_min=0.05,
                backoff_max=2.0,
            ),
            source=self.view,
        )
        self.syncer = Syncer(
            self.net,
            self._sync_apply,
            tip=lambda: self.ledger.tip,
            on_caught_up=self._on_caught_up,
            on_behind=self._on_behind,
            on_fork=self._on_fork,
            fork_start=lambda: self.ledger.rollback_floor + 1,
            hash_at=self.ledger.hash,
            timeout=cfg.sync_timeout,
            hedge=cfg.sync_hedge,
            on_error=self._fail,
            local_errors=(DiskFullError, OSError),
        )
        self.admission.net = self.host.outlet = self.net
        self.host.syncer = self.syncer
        for sig in (signal.SIGTERM, signal.SIGINT):
            # Not in a thread other than the main one (uvloop: ValueError): stop() then.
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, self.stop)
        api = None
        try:
            await self.net.start()
            self.syncer.start()
            if cfg.api is not None:
                from echorand.node.api import Api

                api = Api(self)
                self.api_port = await api.start(cfg.api.host, cfg.api.port)
                log.info("HTTP API on http://%s:%d", cfg.api.host, self.api_port)
            self._tasks = [
                loop.create_task(self._receive_loop()),
                loop.create_task(self._tx_loop()),
                loop.create_task(self._join()),
            ]
            await self._stop.wait()
        finally:
            await self._shutdown(api)
        if self.fatal is not None:
            raise self.fatal

    async def _shutdown(self, api: object | None) -> None:
        """Stop every part, each within STOP_TIMEOUT, and close the ledger. A commit is never
        cut short: it runs on the loop, between two awaits."""
        log.info("shutting down at round %d", self.ledger.tip)
        self.stop_consensus()  # no more events for the core: timers and late answers find nothing
        side = list(self.payloads.tasks)
        await cancel_and_wait([*self._tasks, *side], timeout=STOP_TIMEOUT)
        parts = [self.syncer.close() if self.syncer is not None else None]
        if api is not None:
            parts.append(api.close())  # type: ignore[attr-defined]
        for part in parts:
            if part is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(part, STOP_TIMEOUT)
        if self.net is not None:
            await self.net.close()
        tip = self.ledger.tip
        self.ledger.close()
        log.info("stopped at round %d, ledger closed", tip)

    def stop(self) -> None:
        """Stop: the core takes no more events (its timers find nothing), the rest follows
        in `run`."""
        if self.executor is not None:
            self.executor.retire()
        self._stop.set()

    def _fail(self, error: BaseException) -> None:
        log.critical("stopping: %s", error)
        self.fatal = error
        self.stop()

    # --- joining consensus ---------------------------------------------------------

    def _on_caught_up(self, tip: int) -> None:
        self._caught_up.set()

    def _on_behind(self, target: int) -> None:
        log.info("behind: peers are at round %d, we are at %d", target, self.ledger.tip)

    async def _join(self) -> None:
        cfg = self.config
        if cfg.peers or cfg.min_peers:
            await self._caught_up.wait()
            if cfg.min_peers:
                assert self.net is not None
                try:
                    await asyncio.wait_for(self.net.wait_for_peers(cfg.min_peers), cfg.join_timeout)
                except TimeoutError:
                    log.warning(
                        "joining with %d peers: %d were awaited for %.1f s",
                        len(self.net.peers),
                        cfg.min_peers,
                        cfg.join_timeout,
                    )
        try:
            self.start_consensus()
        except Exception as e:
            log.exception("joining consensus failed")
            self._fail(e)

    def round_context(self, round: int) -> RoundContext:
        """The context of `round` (at most tip + 1) on the ledger's chain: stake table,
        delegates (§16) and the round before (whose sortition weighs the certificate its
        blocks carry)."""
        return round_context(self.view, self.params, round)

    def _payload(self, round: int) -> list[Transaction]:
        """PAY_r (`Payloads.select`; a test may put a producer of its own here)."""
        return self.payloads.select(round)

    def _drive(self, core: Consensus | None) -> None:
        """Run `core` from now on (None: none); the executor of the one before is retired,
        so that its timers and late answers find nothing (a new core may run the round
        number the old one ran: the old one's timers are not its)."""
        if self.executor is not None:
            self.executor.retire()
        self.executor = None if core is None else Executor(core, self.host)
        self.host.joined = self.executor is not None

    def stop_consensus(self) -> None:
        """No core runs (until `start_consensus`): its timers and late answers find nothing."""
        self._drive(None)

    def start_consensus(self) -> None:
        """A new core on the ledger's tip (it re-sends what it signed in its round and signs
        nothing new in a slot it filled: the signed log)."""
        tip = ledger_tip(self.ledger, self.params)
        self._drive(
            Consensus(
                self.params,
                self.keys,
                self.view,
                self.verifier,
                tip,
                payload=self._payload,
                signed=SignedLog(self.ledger.signed_records()),
            )
        )
        log.info("joining consensus at round %d", tip.round + 1)
        assert self.executor is not None
        self.executor.start()
        self._release_held()

    # --- events in -----------------------------------------------------------------

    def _current_round(self) -> int:
        """The round whose messages the node judges now (before joining: the tip's next)."""
        return self.core.current_round if self.core is not None else self.ledger.tip + 1

    async def _receive_loop(self) -> None:
        net = self.net
        assert net is not None
        while True:
            batches = [await net.receive()]
            while len(batches) < MAX_READ_BATCHES and (more := net.receive_nowait()) is not None:
                batches.append(more)
            try:
                await self._handle_batches(batches)
            except Exception as e:
                log.exception("handling network batches failed")
                self._fail(e)
                return

    async def _handle_batches(self, batches: list[Batch]) -> None:
        """Consensus messages of a cycle: the next rounds' held, the current round's
        signatures verified (off the loop when many), then all of them to the core."""
        entries: list[tuple[ConsensusMessage, bytes, Peer]] = []
        for batch in batches:
            top = 0
            for msg, frame in zip(batch.messages, batch.frames, strict=True):
                entries.append((msg, frame, batch.peer))  # type: ignore[arg-type]
                top = max(top, msg.round)  # type: ignore[union-attr]
                if self._on_another_chain(msg) and self.syncer is not None:
                    self.syncer.suspect_fork(batch.peer)
            if top and self.syncer is not None:
                self.syncer.note_tip(batch.peer, top - 1)
        now = [e for e in entries if self._hold_or_keep(e)]
        if not now or self.core is None:
            return
        await self._verify_ahead([m for m, _, _ in now])
        if self.core is None:
            return
        self.host.origin = {id(m): (frame, peer) for m, frame, peer in now}
        try:
            self._feed(MessagesReceived(self.now_ms(), tuple(m for m, _, _ in now)))
        finally:
            self.host.origin = {}

    def _hold_or_keep(self, entry: tuple[ConsensusMessage, bytes, Peer]) -> bool:
        """Whether a message goes to the core now: one of a later round is held (or dropped
        past the window or the limits), one of an earlier round before joining dropped."""
        msg, frame, peer = entry
        current = self._current_round()
        if msg.round > current or (self.core is None and msg.round == current):
            if not self.held.add(current - (self.core is None), msg, frame, peer):
                self.counters["held_dropped"] += 1
            return False
        if self.core is None:
            self.counters["held_dropped"] += 1
            return False
        return True

    def _release_held(self) -> None:
        """Once the node is at a round, its held messages go back to the inbox (each to its
        peer's queue: they are verified like any other, and count for that peer)."""
        if self.core is None or self.net is None:
            return
        current = self.core.current_round
        if current <= self._released:
            return
        self._released = current
        by_peer: dict[Peer, tuple[list[Message], list[bytes]]] = {}
        for msg, frame, peer in self.held.take(current):
            messages, frames = by_peer.setdefault(peer, ([], []))  # type: ignore[arg-type]
            messages.append(msg)
            frames.append(frame)
        for peer, (messages, frames) in by_peer.items():
            self.net.inbox.put(Batch(peer, messages, frames, sum(map(len, frames))))

    async def _verify_ahead(self, messages: Sequence[ConsensusMessage]) -> None:
        """Verify, off the loop, the signatures the core will ask for these messages (those
        that pass every other check): its own check then finds the answers."""
        core = self.core
        if core is None or core.round is None:
            return
        ctx, max_step = core.round.ctx, core.window_step
        checked = [
            c
            for m in messages
            if m.round == ctx.round
            and isinstance(c := check_fields(m, ctx, self.view.public_key, max_step), Checks)
        ]
        await self._off_loop([t for c in checked for t in c.own])
        cache = self.verifier.cache
        carried: dict[bytes, list[SignatureCheck]] = {}
        for c in checked:
            if c.carried_key is not None and all(cache.get(t, True) for t in c.own):
                carried.setdefault(c.carried_key, c.carried)
        await self._off_loop([t for group in carried.values() for t in group])

    async def _off_loop(self, checks: list[SignatureCheck]) -> None:
        """Verify in the loop's executor the checks the cache has no answer for (when at
        least OFF_LOOP of them: fewer are left to the core, on the loop)."""
        todo = list(dict.fromkeys(t for t in checks if t not in self.verifier))
        if len(todo) < OFF_LOOP:
            return
        todo = todo[: SIGNATURE_CACHE // 2]
        keys, payloads, signatures = (list(column) for column in zip(*todo, strict=True))
        loop = asyncio.get_running_loop()
        answers = await loop.run_in_executor(None, crypto.verify_batch, keys, payloads, signatures)
        self.counters["verified_off_loop"] += len(todo)
        self.verifier.remember(todo, answers)

    def _feed(self, event: Event) -> None:
        """Hand `event` to the core through the executor; log what the core dropped."""
        executor = self.executor
        assert executor is not None
        before = self._stats_before
        executor.feed(event)
        stats = executor.core.stats
        if isinstance(event, MessagesReceived):
            self._log_drops(before, stats)
        self._stats_before = Counter(stats)
        self._release_held()

    def _log_drops(self, before: Counter[str], after: Counter[str]) -> None:
        for reason, count in after.items():
            new = count - before.get(reason, 0)
            if new <= 0 or reason == ACCEPTED:
                continue
            level = logging.WARNING if _malicious(reason) else logging.DEBUG
            log.log(level, "dropped %d consensus message(s): %s", new, reason)

    # --- sync ----------------------------------------------------------------------

    def _sync_apply(self, block: Block, cert: Certificate) -> bool:
        """A certified block from a peer: through the core when it runs, else checked here.
        One that does not extend our tip may come from another chain (`ForkSuspected`)."""
        if self.ledger.tip + 1 != block.round or self.halted is not None:
            return False
        if block.prev_hash != self.ledger.tip_hash:
            raise ForkSuspected(block.round)
        if self.core is not None:
            self._feed(CertifiedBlocksReceived(self.now_ms(), ((block, cert),)))
            return self.ledger.tip >= block.round
        return self.fork_choice.apply_certified([(block, cert)], "sync") == 1

    def _on_another_chain(self, msg: object) -> bool:
        return self.fork_choice.another_chain(msg)

    def _on_fork(
        self, peer: Peer, blocks: list[CertifiedBlock], proof: FinalProof | None = None
    ) -> bool:
        """The fork choice against a peer's chain; `proof`: its last final block (by
        default the one it sent, `Syncer.final_of`)."""
        if proof is None and self.syncer is not None:
            proof = self.syncer.final_of(peer)
        return self.fork_choice.on_fork(peer, blocks, proof)

    def _on_halt(self, reason: str) -> None:
        """The host halted: the core stops too."""
        core = self.core
        if core is not None:
            core.halted = core.halted or reason

    def _commit(self, block: Block, cert: Certificate) -> None:
        """Apply a decided (or synced) block (`NodeHost.commit`)."""
        self.host.commit(block, cert)

    async def _tx_loop(self) -> None:
        try:
            await self.admission.gossip_loop()
        except Exception as e:
            log.exception("admitting gossiped transactions failed")
            self._fail(e)
