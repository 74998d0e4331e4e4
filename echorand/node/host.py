"""The node's host: the consensus core's actions carried out on uvloop, LMDB and the network.

`NodeHost` is the `echorand.core.executor.Host` of the real node. Its own messages are made
durable in one LMDB write per batch of actions before any leaves (PROTOCOL §6), then
broadcast; relayed messages go out as the frames they came in, to every peer but their
source; a decided block is applied to the ledger at once (`commit`, also the path of sync
and of the fork choice), then the mempool is rechecked. `outlet` is the network (None
until the node listens); `syncer` the sync loop that fetches blocks and compares chains.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

from echorand.core.events import ForkEvidence
from echorand.core.signed import Signed
from echorand.core.validate import DropReason
from echorand.ledger.ledger import Ledger, LedgerError
from echorand.node.admission import Admission
from echorand.node.metrics import SECONDS_BUCKETS, Histogram
from echorand.node.payloads import Payloads
from echorand.protocol.finality import FinalCertificate
from echorand.wire.messages import Block, Certificate, ConsensusMessage

if TYPE_CHECKING:
    from echorand.net.peer import Peer
    from echorand.net.sync import Syncer

log = logging.getLogger(__name__)

COMMIT_TIMES = 100_000
"""Rounds whose local commit time is remembered (for the API's `committed_at_ms`)."""
MAX_FORKS = 1_000
"""Pieces of fork evidence kept in memory."""
STEP_BUCKETS = (4, 5, 6, 7, 8, 10, 13, 16, 25, 40)


class Outlet(Protocol):
    """What the host asks of the network (`echorand.net.network.Network`)."""

    @property
    def peers(self) -> list[Peer]: ...

    def broadcast_frames(
        self, frames: Sequence[bytes], exclude: Peer | None = None, *, mark: bool = True
    ) -> int: ...

    def penalize(self, peer: Peer, reason: DropReason, detail: str = "") -> None: ...


class NodeHost:
    """The node's surroundings as the executor sees them (`echorand.core.executor.Host`)."""

    def __init__(
        self,
        ledger: Ledger,
        admission: Admission,
        payloads: Payloads,
        fail: Callable[[BaseException], None],
        counters: Counter[str] | None = None,
    ) -> None:
        """`fail(error)` stops the node on an error of a timer or a late answer. The clock
        runs from `start(loop)` on."""
        self.ledger = ledger
        self.admission = admission
        self.payloads = payloads
        self.loop: asyncio.AbstractEventLoop | None = None
        self.t0 = 0.0
        self.fail = fail
        self.counters: Counter[str] = Counter() if counters is None else counters
        self.outlet: Outlet | None = None
        self.syncer: Syncer | None = None
        self.joined = False
        """Whether consensus runs (commits before it are sync, not rounds)."""
        self.forks: deque[ForkEvidence] = deque(maxlen=MAX_FORKS)
        """The fork evidence seen (newest last)."""
        self.halted: str | None = None
        """Why consensus stopped (a conflict with a final block, PROTOCOL §6), if it did."""
        self.on_halt: Callable[[str], None] | None = None
        self.commit_times: OrderedDict[int, int] = OrderedDict()
        """Round -> wall-clock ms (Unix) of its commit here, for the last COMMIT_TIMES rounds."""
        self.round_seconds = Histogram(SECONDS_BUCKETS)
        self.commit_steps = Histogram(STEP_BUCKETS)
        self._last_commit: float | None = None
        self.origin: dict[int, tuple[bytes, Peer]] = {}
        """id(message) -> (its frame, its peer), for the messages the core handles now."""
        self._signed: list[Signed] = []
        self._own: list[bytes] = []
        self._relays: dict[Peer | None, list[bytes]] = {}

    # --- clock -------------------------------------------------------------------------

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Time 0 of the core's clock is now, on `loop`."""
        self.loop = loop
        self.t0 = loop.time()

    def now_ms(self) -> int:
        """The core's time: integer ms of the loop's monotonic clock since the start."""
        assert self.loop is not None, "start(loop) first"
        return int((self.loop.time() - self.t0) * 1000)

    def set_timer(self, at_ms: int, fire: Callable[[], None]) -> None:
        assert self.loop is not None, "start(loop) first"
        self.loop.call_at(self.t0 + at_ms / 1000, self._guarded, fire, "a timer")

    def _guarded(self, call: Callable[[], None], what: str) -> None:
        try:
            call()
        except Exception as e:
            log.exception("handling %s failed", what)
            self.fail(e)

    # --- messages ----------------------------------------------------------------------

    def send(self, message: ConsensusMessage, prev_hash: bytes) -> None:
        self._signed.append(Signed(prev_hash, message))
        self._own.append(message.encode())

    def relay(self, message: ConsensusMessage) -> None:
        frame, peer = self.origin.get(id(message), (None, None))
        self._relays.setdefault(peer, []).append(frame or message.encode())

    def flush(self) -> None:
        """Our messages durable in one write before any leaves (PROTOCOL §6), then out."""
        signed, own, relays = self._signed, self._own, self._relays
        self._signed, self._own, self._relays = [], [], {}
        if signed:
            self.ledger.record_signed(signed)
        if self.outlet is None:
            return
        if own:
            self.outlet.broadcast_frames(own)
        for peer, frames in relays.items():
            self.outlet.broadcast_frames(frames, exclude=peer, mark=False)

    def disconnect(self, message: ConsensusMessage, reason: DropReason) -> None:
        _, peer = self.origin.get(id(message), (None, None))
        if peer is not None and self.outlet is not None:
            self.outlet.penalize(peer, reason, f"a {type(message).__name__}")

    # --- blocks ------------------------------------------------------------------------

    def validate_block(self, block: Block, answer: Callable[[bool], None]) -> bool | None:
        return self.payloads.validate(
            block, lambda ok: self._guarded(lambda: answer(ok), "a block's validation")
        )

    def fetch_block(self, round: int, block_hash: bytes) -> None:
        """The block comes with its certificate, from sync: ask the sync loop to look."""
        log.info(
            "round %d decided block %s.. that we do not hold: asking sync",
            round,
            block_hash.hex()[:16],
        )
        if self.syncer is not None:
            self.syncer.wake()

    def sync(self, from_round: int) -> None:
        log.debug("behind: need certified blocks from round %d", from_round)
        if self.syncer is not None:
            self.syncer.wake()

    def commit(self, block: Block, certificate: Certificate) -> None:
        """Apply a decided (or synced) block: one LMDB transaction, then the mempool."""
        started = time.perf_counter()
        try:
            self.ledger.apply(block, certificate)
        except LedgerError as e:
            self.fail(e)
            raise
        r = block.round
        self.commit_times[r] = int(time.time() * 1000)
        if len(self.commit_times) > COMMIT_TIMES:
            self.commit_times.popitem(last=False)
        n = block.tx_count if not block.is_empty else 0
        dropped = self.admission.committed(block)
        self.admission.observe_block(block, time.perf_counter() - started)
        self._observe_round(block, certificate)
        self.counters["blocks"] += 1
        self.counters["transactions"] += n
        if block.is_empty:
            self.counters["empty_blocks"] += 1
        log.info(
            "committed round %d: %s, %d txs (step %d), mempool %d (-%d)",
            r,
            "empty" if block.is_empty else f"by {block.producer}",
            n,
            certificate.step,
            len(self.admission.mempool),
            dropped,
        )

    def _observe_round(self, block: Block, certificate: Certificate) -> None:
        """The round's length and deciding step (blocks applied before the node joined
        consensus are sync, not rounds), which admission control reads (the block size, and
        the round it takes off a transaction's wait)."""
        if not self.joined:
            return
        now = time.monotonic()
        self.commit_steps.observe(certificate.step)
        if self._last_commit is not None:
            self.round_seconds.observe(now - self._last_commit)
            n = block.tx_count if not block.is_empty else 0
            self.admission.backpressure.observe_commit(
                n, now - self._last_commit, len(self.admission.mempool), empty=block.is_empty
            )
        self._last_commit = now

    # --- forks and final blocks (PROTOCOL §6) --------------------------------------------

    def fork_evidence(self, evidence: ForkEvidence) -> None:
        """Two valid certificates for different values of one round: kept and reported,
        never applied on their own."""
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

    def suspect_fork(self, round: int, block_hash: bytes, why: str) -> None:
        log.warning(
            "round %d: %s (block %s..): comparing chains with the peers",
            round,
            why,
            block_hash.hex()[:16],
        )
        if self.syncer is not None and self.outlet is not None:
            for peer in self.outlet.peers:
                self.syncer.suspect_fork(peer)

    def finalized(self, certificate: FinalCertificate) -> None:
        """Our block of `certificate.round` is final: keep the proof; never rolled back."""
        try:
            self.ledger.record_final(certificate)
        except LedgerError as e:
            self.halt(f"a final certificate does not match our chain: {e}")
            return
        self.counters["finalized"] += 1
        log.info("round %d is final (%d final votes)", certificate.round, len(certificate.votes))

    def halt(self, reason: str, evidence: tuple[object, ...] = ()) -> None:
        """Stop consensus for good: a conflict with a final block (PROTOCOL §6) means the
        adversary exceeded the declared fraction; an operator must look."""
        if self.halted is None:
            self.halted = reason
            self.counters["halted"] = 1
            log.critical("CONSENSUS HALTED: %s", reason)
        if self.on_halt is not None:
            self.on_halt(reason)
