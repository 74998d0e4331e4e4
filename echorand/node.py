"""The node: the sans-IO consensus core wired to real IO on uvloop (docs/protocol.md §15).

- Ledger: LMDB (`echorand.ledger`), reopened at its last committed block after a crash.
  The core reads it through `LedgerView` (stake tables, account keys) and the network
  serves sync requests from it.
- Consensus: `echorand.consensus.Consensus`, fed batches of gossip (`MessagesReceived`),
  timer expiries (`SetTimer` -> `loop.call_at` on the loop's monotonic clock, converted to
  the core's integer milliseconds), block-validation answers and certified blocks from
  sync. Its decisions are applied to the ledger before the next round begins
  (`on_commit`), then the mempool is rechecked.
- Verification: consensus signatures by the native `verify_batch`; a block's transactions
  are checked by one `AccountState.prepare` call after one batch verification of the
  transactions the node has not verified before (`VerifiedTxs`, a bounded set of ids the
  mempool admitted).
- Transactions: `tx_batch` gossip and the HTTP API go to `Mempool.add` (one batch per
  read), the admitted ones are relayed; a producer's payload is `Mempool.select`.
- Start-up: open the ledger, listen and dial, sync to the peers' tip, wait (a bounded
  time) for `min_peers` peers, then join consensus at the tip. Without configured peers
  the node starts alone at once.
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
    Event,
    FetchBlock,
    MessagesReceived,
    Relay,
    Send,
    SetTimer,
    Sync,
    TimerFired,
    TimerKind,
    ValidateBlock,
)
from echorand.genesis import Genesis
from echorand.gossip import Gossip
from echorand.keys import LocalKeys, load_keypair, load_node_keys
from echorand.ledger import Ledger, LedgerError
from echorand.mempool import Mempool
from echorand.messages import (
    MAX_BATCH_TXS,
    Block,
    Certificate,
    ConsensusMessage,
    GcBlock,
    Transaction,
    TxBatch,
)
from echorand.network import Batch, NetConfig, Network
from echorand.params import Params
from echorand.peer import Peer
from echorand.proposers import policy_for
from echorand.round import RoundContext
from echorand.sortition import StakeTable
from echorand.sync import Syncer
from echorand.transactions import BAD_SIGNATURE, verify_signatures
from echorand.validate import NativeVerifier

log = logging.getLogger(__name__)

MAX_HELD = 20_000
"""Consensus messages kept while the node has not joined consensus yet."""
VERIFIED_CAPACITY = 1 << 20
"""Transaction ids remembered as verified (two generations of half)."""
COMMIT_TIMES = 100_000
"""Rounds whose local commit time is remembered (for the API's `committed_at_ms`)."""
BENIGN_DROPS = frozenset(
    {"accepted", "duplicate", "old round", "future round", "repeat or conflict"}
)
"""Consensus verdicts that are normal on a live network (logged at debug level)."""
MAX_READ_BATCHES = 64
"""Network batches handled together (one verification batch for all their messages)."""


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

    def blocks_range(self, from_round: int, count: int) -> list[tuple[Block, Certificate]]:
        return self.ledger.blocks_range(from_round, count)


def _last(items: tuple[int, ...], count: int) -> tuple[int, ...]:
    return items[max(0, len(items) - count) :]


def ledger_tip(ledger: Ledger, params: Params) -> Tip:
    """The chain tip as the core sees it, from the ledger: what `Tip.after` would have made
    from the genesis on (recent authors and producers, CERT_tip for the next block to carry,
    and the tip before it, §16), without replaying the chain."""
    depth = policy_for(params).lock_depth
    chain = ledger.genesis.hash
    carried = ledger.certificate_to_carry()
    recent = ledger.recent_authors(max(depth, ACTIVE_WINDOW) + 1)
    previous = None
    if ledger.tip >= 1:
        before = recent if carried is None else recent[:-1]
        r = ledger.tip - 1
        seed, block_hash = ledger.seed(r), ledger.hash(r)
        assert seed is not None and block_hash is not None
        cert = ledger.proposed_certificate(r)
        producer = None if cert is None else cert.leader
        authors, producers = _last(before, depth), before[-ACTIVE_WINDOW:]
        previous = Tip(r, seed, block_hash, authors, producers, producer, cert, chain=chain)
    return Tip(
        ledger.tip,
        ledger.tip_seed,
        ledger.tip_hash,
        _last(recent, depth),
        recent[-ACTIVE_WINDOW:],
        None if carried is None else carried.leader,
        carried,
        previous,
        chain,
    )


def load_keys(config: NodeConfig, genesis: Genesis) -> LocalKeys:
    """The node's accounts (id -> key pair) from its node key file and key pair files. The
    node key file's pairs are made, and checked against the genesis keys, at first use."""
    node_keys = None
    if config.keys is not None:
        node_keys = load_node_keys(config.keys)
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
            pair = load_keypair(path)
            account = state.id_of(pair.public_key)
            if account is None:
                raise ValueError(f"{path}: its public key has no account in the genesis")
            extra[account] = pair
    return LocalKeys(node_keys, genesis.public_key, extra, where=str(config.keys))


class Node:
    """One node: `await Node(config).run()` until `stop()` (or SIGTERM/SIGINT)."""

    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.genesis = Genesis.load(config.genesis)
        self.params = self.genesis.params
        self.keys = load_keys(config, self.genesis)
        self.ledger = Ledger.open(config.data_dir, self.genesis, durable=config.durable)
        log.info(
            "ledger %s at round %d; %d local accounts",
            config.data_dir,
            self.ledger.tip,
            len(self.keys),
        )
        self.view = LedgerView(self.ledger)
        self.mempool = Mempool(
            self.ledger.state,
            genesis_hash=self.genesis.hash,
            max_count=config.mempool_max_count,
            max_bytes=config.mempool_max_bytes,
            max_per_sender=config.mempool_max_per_sender,
            min_fee=config.mempool_min_fee,
        )
        self.verifier = NativeVerifier()
        self.verified = VerifiedTxs()
        self.core: Consensus | None = None
        self.counters: Counter[str] = Counter()
        self.tx_refused: Counter[str] = Counter()
        self.commit_times: OrderedDict[int, int] = OrderedDict()
        """Round -> wall-clock ms (Unix) of its commit here, for the last COMMIT_TIMES rounds."""
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
        self._held: list[ConsensusMessage] = []
        self._blocks: dict[bytes, Block] = {}
        """Blocks seen this round and the last (own and received), by hash."""
        self._origin: dict[int, tuple[bytes, Peer]] = {}
        self._stats_before: Counter[str] = Counter()
        self._tasks: list[asyncio.Task[None]] = []

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
        self.net = Network(
            NetConfig(
                genesis_hash=self.genesis.hash,
                node_key=os.urandom(32),
                host=cfg.host,
                port=cfg.port,
                peers=cfg.peers,
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
        )
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
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
                loop.create_task(self._join()),
            ]
            await self._stop.wait()
        finally:
            log.info("shutting down at round %d", self.ledger.tip)
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            if api is not None:
                await api.close()
            await self.syncer.close()
            await self.net.close()
            self.ledger.close()
        if self.fatal is not None:
            raise self.fatal

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
        self._start_consensus()

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
        )
        log.info("joining consensus at round %d", tip.round + 1)
        self._run(self.core.start(self.now_ms()))
        held, self._held = self._held, []
        if held:
            self._feed(MessagesReceived(self.now_ms(), tuple(held)))

    # --- events in -----------------------------------------------------------------

    async def _receive_loop(self) -> None:
        net = self.net
        assert net is not None
        while True:
            batches = [await net.receive()]
            while len(batches) < MAX_READ_BATCHES and (more := net.receive_nowait()) is not None:
                batches.append(more)
            try:
                self._handle_batches(batches)
            except Exception as e:
                log.exception("handling network batches failed")
                self._fail(e)
                return

    def _handle_batches(self, batches: list[Batch]) -> None:
        txs: list[tuple[Peer, Sequence[Transaction]]] = []
        messages: list[ConsensusMessage] = []
        origin: dict[int, tuple[bytes, Peer]] = {}
        for batch in batches:
            top = 0
            for msg, frame in zip(batch.messages, batch.frames, strict=True):
                if isinstance(msg, TxBatch):
                    txs.append((batch.peer, msg.transactions))
                    continue
                messages.append(msg)  # type: ignore[arg-type]
                origin[id(msg)] = (frame, batch.peer)
                top = max(top, msg.round)  # type: ignore[union-attr]
                if isinstance(msg, GcBlock):
                    self._blocks.setdefault(msg.block.hash, msg.block)
            if top and self.syncer is not None:
                self.syncer.note_tip(batch.peer, top - 1)
        if txs:
            self._submit_gossip(txs)
        if not messages:
            return
        if self.core is None:
            room = MAX_HELD - len(self._held)
            if room < len(messages):
                self.counters["held_dropped"] += len(messages) - max(room, 0)
            self._held.extend(messages[: max(room, 0)])
            return
        self._origin = origin
        try:
            self._feed(MessagesReceived(self.now_ms(), tuple(messages)))
        finally:
            self._origin = {}

    def _timer(self, round: int, step: int, kind: TimerKind) -> None:
        if self.core is None or self._stop.is_set():
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

    def _log_drops(self, before: Counter[str], after: Counter[str]) -> None:
        for reason, count in after.items():
            new = count - before.get(reason, 0)
            if new <= 0:
                continue
            level = logging.DEBUG if reason in BENIGN_DROPS else logging.WARNING
            if reason == "accepted":
                continue
            log.log(level, "dropped %d consensus message(s): %s", new, reason)

    # --- actions out ---------------------------------------------------------------

    def _run(self, actions: list[Action], queue: deque[Event] | None = None) -> None:
        assert self._loop is not None and self.net is not None
        own: list[bytes] = []
        relays: dict[Peer | None, list[bytes]] = {}
        for action in actions:
            match action:
                case Send(msg):
                    if isinstance(msg, GcBlock):
                        self._blocks.setdefault(msg.block.hash, msg.block)
                    own.append(msg.encode())
                case Relay(msg):
                    frame, peer = self._origin.get(id(msg), (None, None))
                    relays.setdefault(peer, []).append(frame or msg.encode())
                case SetTimer(at_ms, round, step, kind):
                    self._loop.call_at(self._t0 + at_ms / 1000, self._timer, round, step, kind)
                case ValidateBlock(block):
                    ok = self._validate(block)
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
        if own:
            self.net.broadcast_frames(own)
        for peer, frames in relays.items():
            self.net.broadcast_frames(frames, exclude=peer, mark=False)

    def _payload(self, round: int) -> list[Transaction]:
        """PAY_r: the best transactions of the mempool (the ledger is at round - 1)."""
        return self.mempool.select(self.config.block_max_txs)

    def _validate(self, block: Block) -> bool:
        """Whether a proposed block's payload applies to the ledger: signatures, then rules."""
        txs = block.transactions
        if txs:
            verified = self.verified
            unknown = [tx for tx in txs if tx.id not in verified]
            if unknown:
                oks = verify_signatures(unknown, self.genesis.hash)
                if not all(oks):
                    log.warning(
                        "block %s.. of round %d refused: %d bad signature(s)",
                        block.hash.hex()[:16],
                        block.round,
                        oks.count(False),
                    )
                    return False
                self.verified.add_many([tx.id for tx in unknown])
        try:
            self.ledger.state.prepare(block)
        except ValueError as e:
            log.warning("block %s.. of round %d refused: %s", block.hash.hex()[:16], block.round, e)
            return False
        return True

    def _commit(self, block: Block, cert: Certificate) -> None:
        """Apply a decided (or synced) block: one LMDB transaction, then the mempool."""
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
        dropped = self.mempool.recheck({tx.sender for tx in block.transactions}) if n else 0
        self.counters["blocks"] += 1
        self.counters["transactions"] += n
        if block.is_empty:
            self.counters["empty_blocks"] += 1
        self._blocks = {h: b for h, b in self._blocks.items() if b.round > r}
        log.info(
            "committed round %d: %s, %d txs (step %d), mempool %d (-%d)",
            r,
            "empty" if block.is_empty else f"by {block.producer}",
            n,
            cert.step,
            len(self.mempool),
            dropped,
        )

    # --- sync ----------------------------------------------------------------------

    def _sync_apply(self, block: Block, cert: Certificate) -> bool:
        """A certified block from a peer: through the core when it runs, else checked here."""
        if self.ledger.tip + 1 != block.round:
            return False
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

    # --- transactions --------------------------------------------------------------

    def submit(
        self, transactions: Sequence[Transaction], source: Peer | None = None
    ) -> list[str | None]:
        """Admit transactions (from a peer or the API) and relay the admitted ones."""
        if not transactions:
            return []
        reasons = self.mempool.add(transactions, self.verified)
        admitted = [tx for tx, r in zip(transactions, reasons, strict=True) if r is None]
        refused = len(transactions) - len(admitted)
        self.counters["tx_admitted"] += len(admitted)
        if refused:
            self.tx_refused.update(r for r in reasons if r is not None)
            bad = BAD_SIGNATURE in reasons
            level = logging.DEBUG if source is not None and not bad else logging.INFO
            if source is not None and bad:
                level = logging.WARNING
            log.log(
                level,
                "refused %d of %d transaction(s) from %s: %s",
                refused,
                len(transactions),
                source or "the API",
                sorted({r for r in reasons if r is not None}),
            )
        if admitted:
            self.verified.add_many([tx.id for tx in admitted])
            if self.net is not None:
                self.net.broadcast_frames(_tx_frames(admitted), exclude=source)
        return reasons

    def _submit_gossip(self, batches: list[tuple[Peer, Sequence[Transaction]]]) -> None:
        """Transactions from peers: one admission for all, each admitted one relayed to every
        peer but the one it came from."""
        txs = [tx for _, batch in batches for tx in batch]
        sources = [peer for peer, batch in batches for _ in batch]
        reasons = self.mempool.add(txs, self.verified)
        admitted = [i for i, r in enumerate(reasons) if r is None]
        self.counters["tx_admitted"] += len(admitted)
        refused = [r for r in reasons if r is not None]
        if refused:
            self.tx_refused.update(refused)
            bad = refused.count(BAD_SIGNATURE)
            log.log(
                logging.WARNING if bad else logging.DEBUG,
                "refused %d of %d transaction(s) from peers %s: %s",
                len(refused),
                len(txs),
                sorted({repr(p) for p, _ in batches}),
                sorted(set(refused)),
            )
        if not admitted:
            return
        self.verified.add_many([txs[i].id for i in admitted])
        by_source: dict[Peer, list[Transaction]] = {}
        for i in admitted:
            by_source.setdefault(sources[i], []).append(txs[i])
        assert self.net is not None
        for peer, mine in by_source.items():
            self.net.broadcast_frames(_tx_frames(mine), exclude=peer)

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
            "mempool": {"count": len(self.mempool), "bytes": self.mempool.nbytes},
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
            "uptime_s": round(time.time() - self.started_at, 3),
        }

    def metrics(self) -> dict[str, dict[str, int] | int]:
        """Everything counted, for /metrics: flat gauges and labelled counters."""
        core = self.core
        out: dict[str, dict[str, int] | int] = {
            "tip_round": self.ledger.tip,
            "round": core.current_round if core is not None else 0,
            "step": core.round.step if core is not None and core.round is not None else 0,
            "mempool_transactions": len(self.mempool),
            "mempool_bytes": self.mempool.nbytes,
            "mempool_evicted_total": self.mempool.evicted,
            "blocks_committed_total": self.counters["blocks"],
            "empty_blocks_committed_total": self.counters["empty_blocks"],
            "transactions_committed_total": self.counters["transactions"],
            "transactions_admitted_total": self.counters["tx_admitted"],
            "transactions_refused_total": dict(self.tx_refused),
            "consensus_messages_total": dict(core.stats) if core is not None else {},
            "held_dropped_total": self.counters["held_dropped"],
            "supply": self.ledger.supply,
            "minted_total": self.ledger.minted,
            "reward_level": self.ledger.reward_level,
        }
        if self.net is not None:
            net = self.net.metrics()
            drops = {k.removeprefix("drop_"): v for k, v in net.items() if k.startswith("drop_")}
            out["peer_drops_total"] = drops
            for k, v in net.items():
                if not k.startswith("drop_"):
                    out[f"net_{k}"] = v
        return out


# --- echorand node -------------------------------------------------------------------


def add_node_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="the node's TOML configuration")


def run_node(args: argparse.Namespace) -> int:
    """`echorand node --config FILE`: run until SIGTERM or SIGINT."""
    from echorand.config import ConfigError, load_config
    from echorand.genesis import GenesisError
    from echorand.keys import KeyFileError
    from echorand.network import run

    try:
        config = load_config(args.config)
    except ConfigError as e:
        print(f"echorand node: {e}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=config.log_level_number,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        node = Node(config)
    except (GenesisError, KeyFileError, LedgerError, ValueError, OSError) as e:
        log.error("cannot start: %s", e)
        return 1
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
    except LedgerError as e:
        log.error("stopped: %s", e)
        return 1
    return 0
