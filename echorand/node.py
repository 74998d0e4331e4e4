"""The node: the sans-IO consensus core wired to real IO on uvloop (docs/protocol.md §15).

- Ledger: LMDB (`echorand.ledger`), reopened at its last committed block after a crash.
  The core reads it through `LedgerView` (stake tables, account keys) and the network
  serves sync requests from it.
- Consensus: `echorand.consensus.Consensus`, fed batches of gossip (`MessagesReceived`),
  timer expiries (`SetTimer` -> `loop.call_at` on the loop's monotonic clock, converted to
  the core's integer milliseconds), block-validation answers and certified blocks from
  sync. Its decisions are applied to the ledger before the next round begins
  (`on_commit`), then the mempool is rechecked.
- Verification: consensus signatures by the native `verify_batch`, large batches off the
  event loop (in the loop's executor: the native code releases the GIL, so timers keep
  time) into a bounded cache that the core's own check then finds (`CachingVerifier`);
  a block's transactions are checked by one `AccountState.prepare` call, then one batch
  verification of those the node has not verified before (`VerifiedTxs`).
- Transactions: `tx_batch` gossip and the HTTP API go to `Mempool.add`, every cheap check
  first, the signatures off the loop; gossip is taken round-robin over the peers, at most
  CYCLE_TXS a cycle and PEER_CYCLE_TXS of one peer; the admitted ones are relayed. A
  producer's payload is `Mempool.select`.
- Hostile peers: a malicious verdict of the core (`Disconnect`), a transaction with a bad
  signature, a false tip claim, ... are charged to the peer's address (`Network.penalize`);
  messages of the next rounds wait in `Held`, bounded in bytes per peer and in all.
- Start-up: open the ledger, listen and dial, sync to the peers' tip, wait (a bounded
  time) for `min_peers` peers, then join consensus at the tip. Without configured peers
  the node starts alone at once. Stop: within a bounded time (STOP_TIMEOUT per part).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Sequence

from echorand import crypto, forks
from echorand.admission import GOSSIP_SLACK, NODE_BUSY, Backpressure, Busy
from echorand.aio import cancel_and_wait
from echorand.certificate import CertificateError, check_certificate
from echorand.config import NodeConfig
from echorand.consensus import Consensus, Tip, tip_context
from echorand.crypto import Keypair
from echorand.delegation import ACTIVE_WINDOW
from echorand.events import (
    Action,
    BlockValidated,
    CertifiedBlocksReceived,
    Commit,
    Disconnect,
    Event,
    FetchBlock,
    Finalized,
    ForkEvidence,
    Halted,
    MessagesReceived,
    Relay,
    Send,
    SetTimer,
    SuspectFork,
    Sync,
    TimerFired,
    TimerKind,
    ValidateBlock,
)
from echorand.finality import FinalCertificate
from echorand.genesis import Genesis
from echorand.gossip import Gossip, Held
from echorand.keys import LocalKeys, is_sealed_file, load_keypair, load_node_keys
from echorand.ledger import DiskFullError, Ledger, LedgerError
from echorand.mempool import Mempool
from echorand.messages import (
    MAX_BATCH_TXS,
    Block,
    Certificate,
    ConsensusMessage,
    GcBlock,
    GcSignature,
    Message,
    Transaction,
    TxBatch,
)
from echorand.metrics import Histogram, Metric, network_metrics
from echorand.network import Batch, NetConfig, Network
from echorand.params import Params
from echorand.peer import Peer
from echorand.proposers import policy_for
from echorand.round import RoundContext
from echorand.seal import Passphrase
from echorand.signed import Signed, SignedLog
from echorand.sortition import StakeTable
from echorand.sync import CertifiedBlock, ForkSuspected, Syncer
from echorand.transactions import BAD_SIGNATURE, verify_signatures
from echorand.validate import (
    ACCEPTED,
    CachingVerifier,
    Checks,
    DropReason,
    NativeVerifier,
    SignatureCheck,
    check_fields,
)

log = logging.getLogger(__name__)

VERIFIED_CAPACITY = 1 << 18
"""Transaction ids remembered as verified (two generations of half; about 25 MB)."""
SIGNATURE_CACHE = 1 << 15
"""Signature answers remembered (about 20 MB): those verified off the loop until the core
asks, and a round's carried certificates."""
OFF_LOOP = 64
"""Signatures from which a batch is verified off the event loop (fewer: on it, at once)."""
VALIDATE_OFF_LOOP = 8192
"""Unknown transaction signatures from which a proposed block's are verified off the loop
(a quarter of a second of work): below it the answer comes at once, as it always did."""
ADMIT_OFF_LOOP = 2048
"""Transaction signatures from which an admission verifies them off the loop."""
COMMIT_TIMES = 100_000
"""Rounds whose local commit time is remembered (for the API's `committed_at_ms`)."""
MAX_READ_BATCHES = 64
"""Network batches handled together (one verification batch for all their messages)."""
HELD_WINDOW = 2
"""Rounds ahead of the node's whose messages are kept until it gets there."""
HELD_LIMIT = 64 << 20
HELD_PER_PEER = 8 << 20
"""Bytes of held messages in all, and of one peer (docs/protocol.md §12)."""
CYCLE_TXS = 20_000
PEER_CYCLE_TXS = 10_000
"""Gossiped transactions admitted per cycle, and of one peer per cycle."""
MAX_FORKS = 1_000
"""Pieces of fork evidence kept in memory."""
MAX_READ_BATCHES = 64
"""Network batches handled together (one verification batch for all their messages)."""
ADMITTED_TIMES = 200_000
"""Admitted transactions whose admission time is remembered (for their finality)."""
BLOCK_SECONDS = 256
"""Blocks whose build or check time is kept until their commit (`Backpressure`)."""
SECONDS_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
STEP_BUCKETS = (4, 5, 6, 7, 8, 10, 13, 16, 25, 40)
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


def _tx_frames(txs: Sequence[Transaction]) -> list[bytes]:
    """`tx_batch` messages of at most MAX_BATCH_TXS transactions."""
    return [TxBatch(txs[i : i + MAX_BATCH_TXS]).encode() for i in range(0, len(txs), MAX_BATCH_TXS)]


class VerifiedTxs:
    """Ids of transactions whose signature verified, at most `capacity` (two generations)."""

    def __init__(self, capacity: int = VERIFIED_CAPACITY) -> None:
        self._half = max(1, capacity // 2)
        self._new: set[bytes] = set()
        self._old: set[bytes] = set()

    def __contains__(self, tx_id: object) -> bool:
        return tx_id in self._new or tx_id in self._old

    def __len__(self) -> int:
        return len(self._new) + len(self._old)

    def add_many(self, ids: Sequence[bytes]) -> None:
        self._new.update(ids)
        if len(self._new) >= self._half:
            self._old, self._new = self._new, set()


class LedgerView:
    """The ledger as the core (`consensus.Ledger`) and the sync server (`BlockSource`) see it."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def stake_table(self, round: int) -> StakeTable:
        return self.ledger.stake_table(round)

    def delegate(self, round: int, account: int) -> int | None:
        """The account's delegate in the stake snapshot of `round` (§16)."""
        return self.ledger.delegate(round, account)

    def public_key(self, account: int) -> bytes | None:
        state = self.ledger.state
        return state.public_key(account) if 0 <= account < len(state) else None

    def tip(self) -> int:
        return self.ledger.tip

    def encoded_blocks(
        self, from_round: int, count: int, max_bytes: int | None = None
    ) -> list[tuple[bytes, bytes]]:
        return self.ledger.encoded_blocks(from_round, count, max_bytes)


def _last(items: tuple[int, ...], count: int) -> tuple[int, ...]:
    return items[max(0, len(items) - count) :]


def ledger_tip(ledger: Ledger, params: Params, at: int | None = None) -> Tip:
    """The chain tip as the core sees it, from the ledger: what `Tip.after` would have made
    from the genesis on (recent authors and producers, CERT_tip for the next block to carry,
    and the tip before it, §16), without replaying the chain. `at`: as it was at that round
    (the blocks up to it held; the context of round `at + 1` then needs its stake snapshot,
    which reaches back `undo_rounds`)."""
    depth = policy_for(params).lock_depth
    chain = ledger.genesis.hash
    top = ledger.tip if at is None else at
    carried = ledger.proposed_certificate(top)
    recent = ledger.recent_authors(max(depth, ACTIVE_WINDOW) + 1, upto=top)
    previous = None
    if top >= 1:
        before = recent if carried is None else recent[:-1]
        r = top - 1
        seed, block_hash = ledger.seed(r), ledger.hash(r)
        assert seed is not None and block_hash is not None
        cert = ledger.proposed_certificate(r)
        producer = None if cert is None else cert.leader
        authors, producers = _last(before, depth), before[-ACTIVE_WINDOW:]
        previous = Tip(r, seed, block_hash, authors, producers, producer, cert, chain=chain)
    seed, block_hash = ledger.seed(top), ledger.hash(top)
    assert seed is not None and block_hash is not None, f"block {top} is held"
    return Tip(
        top,
        seed,
        block_hash,
        _last(recent, depth),
        recent[-ACTIVE_WINDOW:],
        None if carried is None else carried.leader,
        carried,
        previous,
        chain,
    )


def load_keys(
    config: NodeConfig, genesis: Genesis, passphrase: Passphrase | None = None
) -> tuple[LocalKeys, list[str]]:
    """The node's accounts (id -> key pair) from its node key file and key pair files, and
    the files that are not sealed with a passphrase (echorand.seal). The node key file's
    pairs are made, and checked against the genesis keys, at first use."""
    node_keys = None
    plaintext: list[str] = []
    if config.keys is not None:
        if not is_sealed_file(config.keys):
            plaintext.append(str(config.keys))
        node_keys = load_node_keys(config.keys, passphrase=passphrase)
        if node_keys.genesis_hash != genesis.hash:
            raise ValueError(f"{config.keys}: made for another genesis")
        if len(node_keys) and node_keys.ids[-1] >= genesis.count:
            raise ValueError(
                f"{config.keys}: account {node_keys.ids[-1]}: not in the genesis"
                f" ({genesis.count} accounts)"
            )
    extra: dict[int, Keypair] = {}
    if config.key_files:
        state = genesis.account_state(check_keys=False)
        for path in config.key_files:
            if not is_sealed_file(path):
                plaintext.append(str(path))
            pair = load_keypair(path, passphrase=passphrase)
            account = state.id_of(pair.public_key)
            if account is None:
                raise ValueError(f"{path}: its public key has no account in the genesis")
            extra[account] = pair
    return LocalKeys(node_keys, genesis.public_key, extra, where=str(config.keys)), plaintext


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
        self.mempool = self._new_mempool()
        self.verifier = CachingVerifier(NativeVerifier(), capacity=SIGNATURE_CACHE)
        self.verified = VerifiedTxs()
        self.core: Consensus | None = None
        self.counters: Counter[str] = Counter()
        self.tx_refused: Counter[str] = Counter()
        self.forks: deque[ForkEvidence] = deque(maxlen=MAX_FORKS)
        """The fork evidence seen (newest last)."""
        self.halted: str | None = None
        """Why consensus stopped (a conflict with a final block, PROTOCOL §6), if it did."""
        self.commit_times: OrderedDict[int, int] = OrderedDict()
        """Round -> wall-clock ms (Unix) of its commit here, for the last COMMIT_TIMES rounds."""
        self.admitted_at: OrderedDict[bytes, float] = OrderedDict()
        """Transaction id -> monotonic time of its admission here (the last ADMITTED_TIMES)."""
        self.round_seconds = Histogram(SECONDS_BUCKETS)
        self.finality_seconds = Histogram(SECONDS_BUCKETS)
        self.commit_steps = Histogram(STEP_BUCKETS)
        self._last_commit: float | None = None
        self.fatal: BaseException | None = None
        self.started_at = time.time()
        self.net: Network | None = None
        self.gossip: Gossip | None = None
        self.syncer: Syncer | None = None
        self.api_port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._t0 = 0.0
        self._stop = asyncio.Event()
        self._caught_up = asyncio.Event()
        self.held = Held(HELD_LIMIT, HELD_PER_PEER, HELD_WINDOW)
        self._released = self.ledger.tip
        """The last round whose held messages went back to the inbox."""
        self._origin: dict[int, tuple[bytes, Peer]] = {}
        self._stats_before: Counter[str] = Counter()
        self._tasks: list[asyncio.Task[None]] = []
        self._side: set[asyncio.Task[None]] = set()
        self.backpressure = Backpressure(
            block_max_txs=config.block_max_txs,
            budget_ms=config.block_budget_ms or self.params.big_lam_ms / 2,
            round_ms=self.params.lam_ms + self.params.big_lam_ms,
            backlog_seconds=config.mempool_backlog_seconds,
            enabled=config.admission,
        )
        self._block_seconds: OrderedDict[bytes | int, float] = OrderedDict()
        """What building (by round) or checking (by block hash) a recent block took here."""
        self._admission = asyncio.Lock()
        """One admission at a time, in arrival order: a sender's next transactions must not
        pass its earlier ones while those are verified off the loop ("nonce too high")."""

    # --- clock ---------------------------------------------------------------------

    def now_ms(self) -> int:
        """The core's time: integer ms of the loop's monotonic clock since the start."""
        assert self._loop is not None
        return int((self._loop.time() - self._t0) * 1000)

    # --- life cycle ----------------------------------------------------------------

    async def run(self) -> None:
        """Run until `stop()`; the ledger is closed on the way out."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._t0 = loop.time()
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
        self.gossip = Gossip(self.net)
        self.syncer = Syncer(
            self.net,
            self._sync_apply,
            tip=lambda: self.ledger.tip,
            on_caught_up=self._on_caught_up,
            on_behind=self._on_behind,
            on_fork=self._on_fork,
            fork_start=lambda: self.ledger.rollback_floor + 1,
            timeout=cfg.sync_timeout,
        )
        for sig in (signal.SIGTERM, signal.SIGINT):
            # Not in a thread other than the main one (uvloop: ValueError): stop() then.
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, self.stop)
        api = None
        try:
            await self.net.start()
            self.syncer.start()
            if cfg.api is not None:
                from echorand.api import Api

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
        self.core = None  # no more events for it: timers and late answers find nothing
        await cancel_and_wait([*self._tasks, *self._side], timeout=STOP_TIMEOUT)
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
            self._start_consensus()
        except Exception as e:
            log.exception("joining consensus failed")
            self._fail(e)

    def _ledger_tip(self) -> Tip:
        return ledger_tip(self.ledger, self.params)

    def _round_context(self, round: int) -> RoundContext:
        """The context of `round` = tip + 1 from the ledger: stake table, delegates (§16) and
        the round before (whose sortition weighs the certificate its blocks carry)."""
        tip = self._ledger_tip()
        assert round == tip.round + 1
        return tip_context(self.params, self.view, tip)

    def _start_consensus(self) -> None:
        tip = self._ledger_tip()
        self.core = Consensus(
            self.params,
            self.keys,
            self.view,
            self.verifier,
            tip,
            payload=self._payload,
            on_commit=self._commit,
            signed=SignedLog(self.ledger.signed_records()),
        )
        log.info("joining consensus at round %d", tip.round + 1)
        self._run(self.core.start(self.now_ms()))
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

    def _on_another_chain(self, msg: object) -> bool:
        """A producer's message of a round we could still roll back to, built on another
        H(B_{r-1}) than ours: its sender holds another chain (PROTOCOL §6: compare, and let
        the fork choice decide)."""
        if isinstance(msg, GcBlock):
            prev = msg.block.prev_hash
        elif isinstance(msg, GcSignature):
            prev = msg.prev_hash
        else:
            return False
        ledger = self.ledger
        if not ledger.rollback_floor < msg.round <= ledger.tip + 1:
            return False
        ours = ledger.tip_hash if msg.round == ledger.tip + 1 else ledger.hash(msg.round - 1)
        return prev != ours

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
        self._origin = {id(m): (frame, peer) for m, frame, peer in now}
        try:
            self._feed(MessagesReceived(self.now_ms(), tuple(m for m, _, _ in now)))
        finally:
            self._origin = {}

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

    def _timer(self, core: Consensus | None, round: int, step: int, kind: TimerKind) -> None:
        """A timer the core `core` set: for it alone. (After a switch to another chain a new
        core may run the round number the old one ran; the old one's timers are not its.)"""
        if core is None or core is not self.core or self._stop.is_set():
            return
        try:
            self._feed(TimerFired(self.now_ms(), round, step, kind))
        except Exception as e:
            log.exception("handling a timer failed")
            self._fail(e)

    def _feed(self, event: Event) -> None:
        """Hand `event` to the core and carry out the actions, and those of their answers."""
        core = self.core
        assert core is not None
        queue: deque[Event] = deque([event])
        while queue:
            ev = queue.popleft()
            before = self._stats_before
            actions = core.handle(ev)
            if isinstance(ev, MessagesReceived):
                self._log_drops(before, core.stats)
            self._stats_before = Counter(core.stats)
            self._run(actions, queue)
        self._release_held()

    def _log_drops(self, before: Counter[str], after: Counter[str]) -> None:
        for reason, count in after.items():
            new = count - before.get(reason, 0)
            if new <= 0 or reason == ACCEPTED:
                continue
            level = logging.WARNING if _malicious(reason) else logging.DEBUG
            log.log(level, "dropped %d consensus message(s): %s", new, reason)

    # --- actions out ---------------------------------------------------------------

    def _run(self, actions: list[Action], queue: deque[Event] | None = None) -> None:
        assert self._loop is not None and self.net is not None
        own: list[bytes] = []
        signed: list[Signed] = []
        relays: dict[Peer | None, list[bytes]] = {}
        for action in actions:
            match action:
                case Send(msg, prev_hash):
                    signed.append(Signed(prev_hash, msg))
                    own.append(msg.encode())
                case Relay(msg):
                    frame, peer = self._origin.get(id(msg), (None, None))
                    relays.setdefault(peer, []).append(frame or msg.encode())
                case Disconnect(msg, reason):
                    _, peer = self._origin.get(id(msg), (None, None))
                    if peer is not None:
                        self.net.penalize(peer, reason, f"a {type(msg).__name__}")
                case SetTimer(at_ms, round, step, kind):
                    at = self._t0 + at_ms / 1000
                    self._loop.call_at(at, self._timer, self.core, round, step, kind)
                case ValidateBlock(block):
                    ok = self._validate(block)
                    if ok is None:
                        continue  # its signatures are verified off the loop; answered then
                    event = BlockValidated(self.now_ms(), block.hash, ok)
                    if queue is not None:
                        queue.append(event)
                    else:
                        self._feed(event)
                case FetchBlock(round, block_hash):
                    log.info(
                        "round %d decided block %s.. that we do not hold: waiting for sync",
                        round,
                        block_hash.hex()[:16],
                    )
                case Sync(from_round):
                    log.debug("behind: need certified blocks from round %d", from_round)
                case Commit():
                    pass  # applied by _commit before the next round began
                case ForkEvidence() as evidence:
                    self._fork_evidence(evidence)
                case Finalized(certificate):
                    self._finalized(certificate)
                case Halted(reason):
                    self._halt(reason)
                case SuspectFork(round, block_hash):
                    log.warning(
                        "round %d decided block %s.. of another chain: comparing chains",
                        round,
                        block_hash.hex()[:16],
                    )
                    if self.syncer is not None and self.net is not None:
                        for peer in self.net.peers:
                            self.syncer.suspect_fork(peer)
        if own:
            self.ledger.record_signed(signed)  # durable before anything leaves (PROTOCOL §6)
            self.net.broadcast_frames(own)
        for peer, frames in relays.items():
            self.net.broadcast_frames(frames, exclude=peer, mark=False)

    def _finalized(self, cert: FinalCertificate) -> None:
        """Our block of `cert.round` is final: keep the proof; it is never rolled back."""
        try:
            self.ledger.record_final(cert)
        except LedgerError as e:
            self._halt(f"a final certificate does not match our chain: {e}")
            return
        self.counters["finalized"] += 1
        log.info("round %d is final (%d final votes)", cert.round, len(cert.votes))

    def _fork_evidence(self, evidence: ForkEvidence) -> None:
        """Two valid certificates for different values of one round (PROTOCOL §6): kept and
        reported, never applied on their own."""
        self.forks.append(evidence)
        self.counters["fork_evidence"] += 1
        log.error(
            "fork evidence in round %d: we decided %s.. (step %d), a peer's certificate says"
            " %s.. (step %d)",
            evidence.round,
            evidence.ours.block_hash.hex()[:16],
            evidence.ours.step,
            evidence.theirs.block_hash.hex()[:16],
            evidence.theirs.step,
        )

    def _payload(self, round: int) -> list[Transaction]:
        """PAY_r: the best transactions of the mempool (the ledger is at round - 1), as many
        as the block budget allows (`Backpressure.block_txs`)."""
        started = time.perf_counter()
        txs = self.mempool.select(self.backpressure.block_txs())
        self._note_block_seconds(round, time.perf_counter() - started)
        return txs

    def _note_block_seconds(self, key: bytes | int, seconds: float) -> None:
        self._block_seconds[key] = self._block_seconds.get(key, 0.0) + seconds
        while len(self._block_seconds) > BLOCK_SECONDS:
            self._block_seconds.popitem(last=False)

    def busy(self) -> Busy | None:
        """Whether the API should refuse new transactions now (429): the mempool holds more
        than the node commits in the next rounds."""
        return self.backpressure.busy(len(self.mempool))

    def _validate(self, block: Block) -> bool | None:
        """Whether a proposed block's payload applies to the ledger: the rules first (one
        native `prepare`: an overspending or replayed transaction costs no signature check),
        then the signatures not verified before; None when there are VALIDATE_OFF_LOOP or
        more, verified off the loop and answered then (`_validate_signatures`)."""
        started = time.perf_counter()
        try:
            self.ledger.state.prepare(block)
        except ValueError as e:
            log.warning("block %s.. of round %d refused: %s", block.hash.hex()[:16], block.round, e)
            return False
        txs = block.transactions if not block.is_empty else ()
        unknown = [tx for tx in txs if tx.id not in self.verified]
        if len(unknown) >= VALIDATE_OFF_LOOP:
            task = asyncio.get_running_loop().create_task(self._validate_signatures(block, unknown))
            self._side.add(task)
            task.add_done_callback(self._side.discard)
            self._note_block_seconds(block.hash, time.perf_counter() - started)
            return None
        ok = self._signatures_ok(block, unknown, verify_signatures(unknown, self.genesis.hash))
        self._note_block_seconds(block.hash, time.perf_counter() - started)
        return ok

    async def _validate_signatures(self, block: Block, unknown: list[Transaction]) -> None:
        loop = asyncio.get_running_loop()
        oks = await loop.run_in_executor(None, verify_signatures, unknown, self.genesis.hash)
        ok = self._signatures_ok(block, unknown, oks)
        if self.core is not None and not self._stop.is_set():
            try:
                self._feed(BlockValidated(self.now_ms(), block.hash, ok))
            except Exception as e:
                log.exception("handling a block's validation failed")
                self._fail(e)

    def _signatures_ok(self, block: Block, txs: list[Transaction], oks: list[bool]) -> bool:
        if not all(oks):
            log.warning(
                "block %s.. of round %d refused: %d bad signature(s)",
                block.hash.hex()[:16],
                block.round,
                oks.count(False),
            )
            return False
        self.verified.add_many([tx.id for tx in txs])
        return True

    def _commit(self, block: Block, cert: Certificate) -> None:
        """Apply a decided (or synced) block: one LMDB transaction, then the mempool."""
        started = time.perf_counter()
        try:
            self.ledger.apply(block, cert)
        except LedgerError as e:
            self._fail(e)
            raise
        r = block.round
        self.commit_times[r] = int(time.time() * 1000)
        if len(self.commit_times) > COMMIT_TIMES:
            self.commit_times.popitem(last=False)
        n = block.tx_count if not block.is_empty else 0
        self._observe_commit(block, cert, n)
        dropped = self.mempool.recheck({tx.sender for tx in block.transactions}) if n else 0
        if n:
            cost = time.perf_counter() - started
            cost += self._block_seconds.pop(block.hash, 0.0) + self._block_seconds.pop(r, 0.0)
            self.backpressure.observe_block(n, cost)
        self.counters["blocks"] += 1
        self.counters["transactions"] += n
        if block.is_empty:
            self.counters["empty_blocks"] += 1
        log.info(
            "committed round %d: %s, %d txs (step %d), mempool %d (-%d)",
            r,
            "empty" if block.is_empty else f"by {block.producer}",
            n,
            cert.step,
            len(self.mempool),
            dropped,
        )

    def _observe_commit(self, block: Block, cert: Certificate, n: int) -> None:
        """The round's length and step, and the finality of the transactions admitted here
        (rounds applied before the node joined consensus are sync, not rounds)."""
        now = time.monotonic()
        if self.core is not None:
            self.commit_steps.observe(cert.step)
            if self._last_commit is not None:
                self.round_seconds.observe(now - self._last_commit)
                self.backpressure.observe_commit(
                    n, now - self._last_commit, len(self.mempool), empty=block.is_empty
                )
            self._last_commit = now
        if n and self.admitted_at:
            admitted_at = self.admitted_at
            for tx in block.transactions:
                at = admitted_at.pop(tx.id, None)
                if at is not None:
                    self.finality_seconds.observe(now - at)

    def _note_admitted(self, ids: Sequence[bytes]) -> None:
        now = time.monotonic()
        admitted_at = self.admitted_at
        for tx_id in ids:
            admitted_at[tx_id] = now
        while len(admitted_at) > ADMITTED_TIMES:
            admitted_at.popitem(last=False)

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
        ctx = self._round_context(block.round)
        try:
            check_certificate(cert, block, ctx, self.view.public_key, self.verifier)
        except CertificateError as e:
            log.warning("sync: the certificate of round %d is refused: %s", block.round, e)
            return False
        self._commit(block, cert)
        return True

    # --- forks (PROTOCOL §6, docs/protocol.md §10) ----------------------------------

    def _on_fork(self, peer: Peer, blocks: list[CertifiedBlock]) -> bool:
        """A peer's certified chain from the first round we could roll back: the fork
        choice against ours. True when we follow that chain afterwards. Nothing the peer
        sent is believed before its certificates pass (`_switch`): keeping ours needs none,
        and fork evidence is recorded only from checked certificates."""
        if self.halted is not None:
            return False
        try:
            plan = forks.plan(self.ledger, blocks)
        except forks.ForkError as e:
            # It parts from ours at or below our last final block: that chain can never reach
            # the final round (or the peer lies). Its owner is the one to switch; we keep ours.
            log.warning(
                "a chain from %s does not attach to ours above our last final block %d: %s;"
                " kept ours",
                peer,
                self.ledger.final_round,
                e,
            )
            self._unstick()
            return False
        if plan is None:
            return True
        if plan.choice is forks.Choice.HALT:  # needs a final block proved on their chain
            self._halt(f"round {plan.fork_round}: two final blocks on chains that part there")
            return False
        if plan.choice is forks.Choice.THEIRS:
            return self._switch(plan)
        if self._checked_fork_round(plan):
            final = self.ledger.final_certificate(plan.fork_round)
            if final is not None:
                theirs_hash = plan.theirs[0][0].hash.hex()[:16]
                self._halt(
                    f"round {plan.fork_round}: a peer's valid certificate for block"
                    f" {theirs_hash}.. conflicts with our final block"
                    f" {final.block_hash.hex()[:16]}.."
                )
                return False
        log.warning(
            "fork at round %d with %s: %s; kept",
            plan.fork_round,
            peer,
            "it parts below our last final block"
            if plan.below_final
            else "our chain wins the fork choice",
        )
        self._unstick()
        return False

    def _checked_fork_round(self, plan: forks.ForkPlan) -> bool:
        """Whether their block of the fork round passes its certificate in that round's
        context on our chain (the chains share everything before it); if so, both
        certificates are recorded as fork evidence. False when that round is past the
        reach of our stake snapshots (`undo_rounds`)."""
        block, theirs = plan.theirs[0]
        try:
            tip = ledger_tip(self.ledger, self.params, plan.fork_round - 1)
            ctx = tip_context(self.params, self.view, tip)
            check_certificate(theirs, block, ctx, self.view.public_key, self.verifier)
        except (CertificateError, LedgerError) as e:
            log.warning(
                "fork at round %d: their certificate is not checked: %s", plan.fork_round, e
            )
            return False
        _, ours = plan.ours[0]
        self._fork_evidence(ForkEvidence(plan.fork_round, ours, theirs, block))
        return True

    def _unstick(self) -> None:
        """Our chain stays: a round that decided the other chain's block can never commit it,
        so consensus starts again on our tip (it re-sends what it signed, signs nothing new
        in those slots)."""
        if self.core is not None and self.core.decided_elsewhere:
            log.warning(
                "round %d decided a block of the other chain: restarting it", self.ledger.tip + 1
            )
            self._start_consensus()

    def _switch(self, plan: forks.ForkPlan) -> bool:
        """Roll back to the fork point and apply the other chain, each block checked as sync
        checks it; if one fails, restore ours. Consensus restarts on the new tip (it abstains
        in the slots it filled on the old chain)."""
        self.core = None
        removed = self.ledger.rollback(plan.rollback_to)
        self.counters["rollbacks"] += 1
        self.counters["rolled_back_blocks"] += len(removed)
        applied = self._apply_certified(plan.theirs)
        if applied:  # their block of the fork round passed its certificate: evidence
            (_, ours), (theirs_block, theirs) = plan.ours[0], plan.theirs[0]
            self._fork_evidence(ForkEvidence(plan.fork_round, ours, theirs, theirs_block))
        if applied < len(plan.theirs):
            log.error(
                "fork at round %d: the other chain failed its checks; ours restored",
                plan.fork_round,
            )
            self.ledger.rollback(plan.rollback_to)
            self._apply_certified(plan.ours)
        else:
            log.warning(
                "fork at round %d: switched to the chain the fork choice prefers (%d blocks"
                " rolled back, %d applied), now at round %d",
                plan.fork_round,
                len(removed),
                applied,
                self.ledger.tip,
            )
        self._reset_mempool([tx for block in removed for tx in block.transactions])
        if self._caught_up.is_set():
            self._start_consensus()
        return applied == len(plan.theirs)

    def _apply_certified(self, blocks: Sequence[CertifiedBlock]) -> int:
        """Apply consecutive certified blocks on the tip, each certificate checked against
        its round's committee; how many were applied before one failed."""
        for n, (block, cert) in enumerate(blocks):
            if block.round != self.ledger.tip + 1 or block.prev_hash != self.ledger.tip_hash:
                return n
            ctx = self._round_context(block.round)
            try:
                check_certificate(cert, block, ctx, self.view.public_key, self.verifier)
            except CertificateError as e:
                log.warning("fork: the certificate of round %d is refused: %s", block.round, e)
                return n
            self._commit(block, cert)
        return len(blocks)

    def _halt(self, reason: str) -> None:
        """Stop consensus for good: a conflict with a final block (PROTOCOL §6) means the
        adversary exceeded the declared fraction; an operator must look."""
        if self.halted is None:
            self.halted = reason
            self.counters["halted"] = 1
            log.critical("CONSENSUS HALTED: %s", reason)
        if self.core is not None:
            self.core.halted = self.core.halted or reason

    def _new_mempool(self) -> Mempool:
        cfg = self.config
        return Mempool(
            self.ledger.state,
            genesis_hash=self.genesis.hash,
            max_count=cfg.mempool_max_count,
            max_bytes=cfg.mempool_max_bytes,
            max_per_sender=cfg.mempool_max_per_sender,
            min_fee=cfg.mempool_min_fee,
        )

    def _reset_mempool(self, returned: Sequence[Transaction]) -> None:
        """After a rollback: a fresh pool on the rolled-back state, with the transactions of
        the removed blocks and those that were queued (admission checks them again)."""
        queued = self.mempool.select(len(self.mempool))
        self.mempool = self._new_mempool()
        if returned or queued:
            self.mempool.add([*returned, *queued], self.verified)

    # --- transactions --------------------------------------------------------------

    async def submit(
        self, transactions: Sequence[Transaction], source: Peer | None = None
    ) -> list[str | None]:
        """Admit transactions (from a peer or the API) and relay the admitted ones. From the
        API, as many as the admission bound has room for (`Backpressure.room`): the rest
        are refused unread (NODE_BUSY)."""
        if not transactions:
            return []
        shed = 0
        if source is None:
            room = self.backpressure.room(len(self.mempool))
            shed = max(0, len(transactions) - room)
            transactions = transactions[:room]
            self.backpressure.admitted(len(transactions))
            if shed:
                self.tx_refused[NODE_BUSY] += shed
        reasons = await self._admit([(source, transactions)]) if transactions else []
        reasons += [NODE_BUSY] * shed
        refused = [r for r in reasons if r is not None]
        if refused:
            bad = BAD_SIGNATURE in refused
            level = logging.WARNING if source is not None and bad else logging.INFO
            if source is not None and not bad:
                level = logging.DEBUG
            log.log(
                level,
                "refused %d of %d transaction(s) from %s: %s",
                len(refused),
                len(transactions),
                source or "the API",
                sorted(set(refused)),
            )
        return reasons

    async def _tx_loop(self) -> None:
        """Gossiped transactions: peers in turn, at most CYCLE_TXS a cycle and PEER_CYCLE_TXS
        of one peer (the rest waits in the network's bounded `tx_inbox`)."""
        net = self.net
        assert net is not None
        while True:
            first = await net.tx_inbox.get()
            taken: Counter[Peer] = Counter()
            batches: list[tuple[Peer | None, Sequence[Transaction]]] = []
            batch: Batch | None = first
            while batch is not None:
                txs = [tx for msg in batch.messages for tx in msg.transactions]  # type: ignore[union-attr]
                batches.append((batch.peer, txs))
                taken[batch.peer] += len(txs)
                if sum(taken.values()) >= CYCLE_TXS:
                    break
                full = [p for p, n in taken.items() if n >= PEER_CYCLE_TXS]
                batch = net.tx_inbox.get_nowait(skip=full)
            pool = len(self.mempool)
            if self.backpressure.busy(pool, GOSSIP_SLACK) is not None:
                # Far past the bound: dropped unread (their senders' nodes hold them).
                self.counters["tx_gossip_shed"] += sum(len(txs) for _, txs in batches)
                continue
            try:
                reasons = await self._admit(batches)
            except Exception as e:
                log.exception("admitting gossiped transactions failed")
                self._fail(e)
                return
            refused = [r for r in reasons if r is not None]
            if refused:
                log.log(
                    logging.WARNING if BAD_SIGNATURE in refused else logging.DEBUG,
                    "refused %d of %d transaction(s) from peers %s: %s",
                    len(refused),
                    len(reasons),
                    sorted({repr(p) for p, _ in batches}),
                    sorted(set(refused)),
                )

    async def _admit(
        self, batches: list[tuple[Peer | None, Sequence[Transaction]]]
    ) -> list[str | None]:
        """One admission for transactions from several sources: the signatures the mempool
        would check verified first (off the loop when many), then `Mempool.add`; a peer that
        sent a bad signature is charged once; each admitted one is relayed to every peer but
        the one it came from. Admissions run one at a time, in the order they were asked."""
        async with self._admission:
            return await self._admit_now(batches)

    async def _admit_now(
        self, batches: list[tuple[Peer | None, Sequence[Transaction]]]
    ) -> list[str | None]:
        txs = [tx for _, batch in batches for tx in batch]
        sources = [peer for peer, batch in batches for _ in batch]
        refuted: set[bytes] = set()
        todo = self.mempool.to_verify(txs, self.verified) if len(txs) >= ADMIT_OFF_LOOP else []
        if len(todo) >= ADMIT_OFF_LOOP:
            loop = asyncio.get_running_loop()
            oks = await loop.run_in_executor(None, verify_signatures, todo, self.genesis.hash)
            self.verified.add_many([tx.id for tx, ok in zip(todo, oks, strict=True) if ok])
            refuted = {tx.id for tx, ok in zip(todo, oks, strict=True) if not ok}
        reasons = self.mempool.add(txs, self.verified, refuted)
        admitted = [i for i, r in enumerate(reasons) if r is None]
        self.counters["tx_admitted"] += len(admitted)
        refused = [r for r in reasons if r is not None]
        if refused:
            self.tx_refused.update(refused)
        if self.net is not None:
            cheats = {sources[i] for i, r in enumerate(reasons) if r == BAD_SIGNATURE}
            for peer in cheats:
                if peer is not None:
                    self.net.penalize(peer, DropReason.BAD_TRANSACTION)
        if not admitted:
            return reasons
        ids = [txs[i].id for i in admitted]
        self.verified.add_many(ids)
        self._note_admitted(ids)
        by_source: dict[Peer | None, list[Transaction]] = {}
        for i in admitted:
            by_source.setdefault(sources[i], []).append(txs[i])
        if self.net is not None:
            for peer, mine in by_source.items():
                self.net.broadcast_frames(_tx_frames(mine), exclude=peer)
        return reasons

    # --- status --------------------------------------------------------------------

    def status(self) -> dict[str, object]:
        core, ledger = self.core, self.ledger
        rnd = core.round if core is not None else None
        return {
            "genesis": self.genesis.hash.hex(),
            "round": core.current_round if core is not None else None,
            "step": rnd.step if rnd is not None else None,
            "tip": {"round": ledger.tip, "hash": ledger.tip_hash.hex()},
            "peers": len(self.net.peers) if self.net is not None else 0,
            "network": self.net.status() if self.net is not None else {},
            "mempool": {
                "count": len(self.mempool),
                "bytes": self.mempool.nbytes,
                "limit": self.backpressure.limit(),
                "block_txs": self.backpressure.block_txs(),
            },
            "sync": {
                "joined": core is not None,
                "caught_up": self._caught_up.is_set(),
                "target": self.syncer.target if self.syncer is not None else 0,
                "synced_blocks": self.syncer.applied if self.syncer is not None else 0,
            },
            "accounts": len(self.keys),
            "supply": {
                "genesis": self.genesis.total,
                "minted": ledger.minted,
                "total": ledger.supply,
                "reward_level": ledger.reward_level,
            },
            "final_round": ledger.final_round,
            "forks": len(self.forks),
            "halted": self.halted,
            "uptime_s": round(time.time() - self.started_at, 3),
        }

    def metrics(self) -> list[Metric]:
        """Everything counted, for /metrics (echorand.metrics)."""
        core, ledger, pool = self.core, self.ledger, self.mempool
        step = core.round.step if core is not None and core.round is not None else 0
        out = [
            Metric("tip_round", "gauge", "round of the last committed block", ledger.tip),
            Metric(
                "round",
                "gauge",
                "the round in progress (0: not joined)",
                core.current_round if core is not None else 0,
            ),
            Metric("step", "gauge", "the step in progress", step),
            Metric("joined", "gauge", "1 once the node runs consensus", int(core is not None)),
            Metric("start_time_seconds", "gauge", "Unix time the node started", self.started_at),
            Metric("mempool_transactions", "gauge", "transactions queued", len(pool)),
            Metric("mempool_bytes", "gauge", "bytes of the queued transactions", pool.nbytes),
            Metric(
                "mempool_evicted_total",
                "counter",
                "transactions evicted from the mempool",
                pool.evicted,
            ),
            Metric(
                "blocks_committed_total",
                "counter",
                "blocks committed here",
                self.counters["blocks"],
            ),
            Metric(
                "empty_blocks_committed_total",
                "counter",
                "empty blocks committed here",
                self.counters["empty_blocks"],
            ),
            Metric(
                "transactions_committed_total",
                "counter",
                "transactions in blocks committed here",
                self.counters["transactions"],
            ),
            Metric(
                "transactions_admitted_total",
                "counter",
                "transactions admitted to the mempool",
                self.counters["tx_admitted"],
            ),
            Metric(
                "api_busy_total",
                "counter",
                "POST /tx answered 429 (busy: the mempool holds more than the next rounds commit)",
                self.counters["api_busy"],
            ),
            Metric(
                "transactions_gossip_shed_total",
                "counter",
                "gossiped transactions dropped unread: the mempool was far past its bound",
                self.counters["tx_gossip_shed"],
            ),
            Metric(
                "transactions_refused_total",
                "counter",
                "transactions refused, by reason",
                dict(self.tx_refused),
            ),
            Metric(
                "consensus_messages_total",
                "counter",
                "consensus messages by verdict (accepted or why dropped)",
                dict(core.stats) if core is not None else {},
            ),
            Metric(
                "held_dropped_total",
                "counter",
                "consensus messages of later rounds dropped (past the window or the limits)",
                self.counters["held_dropped"],
            ),
            Metric("held_messages", "gauge", "messages of later rounds held", len(self.held)),
            Metric("held_bytes", "gauge", "bytes of the messages held", self.held.nbytes),
            Metric(
                "signatures_verified_off_loop_total",
                "counter",
                "signatures verified off the event loop",
                self.counters["verified_off_loop"],
            ),
            Metric(
                "supply", "gauge", "units in existence: genesis total plus minted", ledger.supply
            ),
            Metric(
                "minted_total",
                "counter",
                "units minted by block rewards since the genesis",
                ledger.minted,
            ),
            Metric(
                "reward_level", "gauge", "units a non-empty block mints now", ledger.reward_level
            ),
            Metric(
                "final_round",
                "gauge",
                "the last final block (never rolled back)",
                ledger.final_round,
            ),
            Metric(
                "finalized_total",
                "counter",
                "blocks this node saw become final",
                self.counters["finalized"],
            ),
            Metric(
                "fork_evidence_total",
                "counter",
                "pairs of valid certificates for different blocks of one round",
                self.counters["fork_evidence"],
            ),
            Metric(
                "rollbacks_total",
                "counter",
                "switches to another chain by the fork choice",
                self.counters["rollbacks"],
            ),
            Metric(
                "rolled_back_blocks_total",
                "counter",
                "tentative blocks removed by rollbacks",
                self.counters["rolled_back_blocks"],
            ),
            Metric(
                "halted",
                "gauge",
                "1 when consensus stopped on a conflict with a final block",
                int(self.halted is not None),
            ),
            Metric(
                "round_duration_seconds",
                "histogram",
                "time between consecutive commits",
                self.round_seconds,
            ),
            Metric(
                "commit_step",
                "histogram",
                "the step whose certificate decided each round",
                self.commit_steps,
            ),
            Metric(
                "transaction_finality_seconds",
                "histogram",
                "from a transaction's admission here to its block's commit",
                self.finality_seconds,
            ),
        ]
        if self.net is not None:
            out += network_metrics(self.net.metrics())
        return out


# --- echorand node -------------------------------------------------------------------


def add_node_arguments(parser: argparse.ArgumentParser) -> None:
    from echorand.logs import LOG_FORMATS
    from echorand.seal import add_passphrase_arguments

    parser.add_argument("--config", required=True, help="the node's TOML configuration")
    parser.add_argument(
        "--log-format", choices=LOG_FORMATS, default="text", help="text lines or JSON lines"
    )
    add_passphrase_arguments(parser)


def _start(args: argparse.Namespace) -> Node | int:
    """The node of `args.config`, or the exit status after one line naming the problem."""
    from echorand.config import ConfigError, load_config
    from echorand.genesis import GenesisError
    from echorand.keys import KeyFileError
    from echorand.logs import configure_logging
    from echorand.seal import PassphraseError, passphrase_source

    try:
        config = load_config(args.config)
    except ConfigError as e:
        print(f"echorand node: {e}", file=sys.stderr)
        return 2
    configure_logging(config.log_level_number, args.log_format)
    try:
        return Node(config, passphrase_source(args))
    except DiskFullError as e:
        log.error("cannot start, the disk is full: %s", e)
        return EXIT_DISK_FULL
    except (GenesisError, KeyFileError, LedgerError, PassphraseError, ValueError, OSError) as e:
        log.error("cannot start: %s", e)
        return 1
    except KeyboardInterrupt:
        log.error("cannot start: interrupted while opening the ledger")
        return 130


def run_node(args: argparse.Namespace) -> int:
    """`echorand node --config FILE`: run until SIGTERM or SIGINT, which finish the commit in
    progress, close the ledger and exit 0. A start-up error is one line and exit 1 (2 for
    the configuration)."""
    from echorand.network import run

    node = _start(args)
    if isinstance(node, int):
        return node
    profile = os.environ.get("ECHORAND_PROFILE")
    try:
        if profile:
            # Profiling a devnet: ECHORAND_PROFILE=DIR writes DIR/node-<pid>.prof at exit.
            import cProfile

            with cProfile.Profile() as prof:
                run(node.run())
            prof.dump_stats(os.path.join(profile, f"node-{os.getpid()}.prof"))
        else:
            run(node.run())
    except DiskFullError as e:
        log.error("stopped, the disk is full: %s", e)
        return EXIT_DISK_FULL
    except LedgerError as e:
        log.error("stopped: %s", e)
        return 1
    except OSError as e:
        log.error("cannot start: %s", e)
        return 1
    return 0
