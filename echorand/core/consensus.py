"""The consensus core of a node: one round after another, sans-IO.

`Consensus` takes events (`echorand.core.events`) and returns actions. It keeps
the chain tip (r, Q[r-1], H(B_{r-1})), runs the current `Round`, verifies
incoming messages in batches, applies the gossip rule, turns a decision
into `Commit(block, CERT_r)` (and begins the next round once the caller answers
`Committed`), and catches up from certified blocks when it falls behind.
Everything it needs from the outside comes through two small interfaces:
`Ledger` (the stake table of a round, account keys) and `Verifier` (batched
signature verification). `echorand.core.executor` carries out what it returns.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from echorand.core.events import (
    OTHER_PARENT,
    PAST_MU,
    Action,
    BlockReceived,
    BlockValidated,
    CertifiedBlocksReceived,
    Commit,
    Committed,
    Disconnect,
    Event,
    FetchBlock,
    Finalized,
    ForkEvidence,
    Halted,
    MessagesReceived,
    Relay,
    Send,
    SuspectFork,
    Sync,
    TimerFired,
)
from echorand.core.round import Leader, PayloadSource, Round
from echorand.core.signed import SignedLog
from echorand.core.validate import ACCEPTED, DropReason, Verifier, should_relay, verify_messages
from echorand.protocol.certificate import CertificateError, check_certificate
from echorand.protocol.committee import Delegates, RoundContext
from echorand.protocol.delegation import ACTIVE_WINDOW
from echorand.protocol.finality import FinalCertificate, FinalTally
from echorand.protocol.params import Params
from echorand.protocol.proposers import next_authors, policy_for
from echorand.protocol.seeds import next_seed
from echorand.protocol.sortition import StakeTable
from echorand.wire.messages import (
    BbaSignature,
    BbaSubstitute,
    Block,
    Certificate,
    ConsensusMessage,
    FinalVote,
    GcBlock,
    GcProposal,
    GcSignature,
    GcSubstitute,
    digest,
)

MAX_BUFFERED = 20_000
"""Messages of the next round kept until this node gets there."""
FINAL_WINDOW = 8
"""Rounds back whose final votes are still counted (they arrive after the commit)."""


class Ledger(Protocol):
    """What the core reads from the ledger (the caller's storage)."""

    def stake_table(self, round: int) -> StakeTable:
        """The stake table of `round`: balances after block max(0, round - 2)."""
        ...

    def public_key(self, account: int) -> bytes | None:
        """An account's public key, None if there is no such account."""
        ...


def ledger_delegates(ledger: Ledger, round: int) -> Delegates | None:
    """`account -> its explicit delegate` in the stake snapshot of `round`, if the ledger
    has delegation (`delegate(round, account) -> int | None`, docs/protocol.md §16)."""
    delegate = getattr(ledger, "delegate", None)
    if delegate is None:
        return None
    return lambda account: delegate(round, account)


@dataclass(frozen=True, slots=True)
class Tip:
    """The last block of the chain: its round, Q[round] and H(B_round) (round 0: genesis),
    and the producers of the last non-empty blocks, most recent last (as many as the
    proposer policy locks: F under round-robin, none under sortition).

    `chain` is the genesis hash, which names the network and which every signature is
    bound to (PROTOCOL §2); at round 0 it is `block_hash` itself (H(B_0) is the genesis
    hash), so `Tip(0, Q0, genesis_hash)` needs no more."""

    round: int
    seed: bytes
    block_hash: bytes
    authors: tuple[int, ...] = ()
    producers: tuple[int, ...] = ()
    """The producers of the last ACTIVE_WINDOW non-empty blocks, most recent last: the
    fallback's active members M are these, distinct and ascending (docs/protocol.md §16)."""
    producer: int | None = None
    """The tip block's producer; None for the empty block (and the genesis)."""
    certificate: Certificate | None = None
    """CERT_round of a proposed tip block: the next round's blocks carry it (§16)."""
    previous: Tip | None = None
    """The tip before this one (without its own `previous`): the round whose sortition
    the certificate carried by the next round's blocks is checked against."""
    chain: bytes = b""
    """The genesis hash (given for a tip past round 0; the tip's own hash at round 0)."""

    def __post_init__(self) -> None:
        if not self.chain:
            if self.round != 0:
                raise ValueError(f"Tip of round {self.round}: chain (the genesis hash) is needed")
            object.__setattr__(self, "chain", self.block_hash)

    def after(self, block: Block, params: Params, certificate: Certificate | None = None) -> Tip:
        """The tip once `block` (of round self.round + 1), certified by `certificate`, is
        appended."""
        r = block.round
        producer = None if block.is_empty else block.producer
        seed = next_seed(self.seed, r, None if block.is_empty else block.seed_sig)
        depth = policy_for(params).lock_depth
        producers = self.producers
        if producer is not None:
            producers = (*producers, producer)[-ACTIVE_WINDOW:]
        return Tip(
            r,
            seed,
            block.hash,
            next_authors(self.authors, producer, depth),
            producers,
            producer,
            None if producer is None else certificate,
            replace(self, previous=None),
            self.chain,
        )

    @property
    def active(self) -> tuple[int, ...]:
        """M: the distinct recent producers, ascending."""
        return tuple(sorted(set(self.producers)))

    def context(
        self,
        params: Params,
        table: StakeTable,
        delegates: Delegates | None = None,
        previous: RoundContext | None = None,
    ) -> RoundContext:
        """The context of the next round, r = self.round + 1, on this tip; `previous` is
        that of round r - 1 (needed when the tip block is a proposed block)."""
        return RoundContext(
            params,
            self.round + 1,
            self.seed,
            self.block_hash,
            table,
            self.authors,
            active=self.active if params.fallback else (),
            delegates=delegates,
            chain=self.chain,
            prev_producer=self.producer,
            carried=self.certificate,
            previous=previous,
        )


def tip_context(
    params: Params, ledger: Ledger, tip: Tip, previous: RoundContext | None = None
) -> RoundContext:
    """The context of round tip.round + 1 from the ledger, with that of the round before
    (rebuilt from `tip.previous` unless given) when the tip block is a proposed block whose
    certificate the next round's blocks carry (§16)."""
    r = tip.round + 1
    if previous is None and tip.producer is not None and tip.previous is not None:
        previous = tip_context(params, ledger, tip.previous)
    return tip.context(params, ledger.stake_table(r), ledger_delegates(ledger, r), previous)


def _no_payload(round: int) -> tuple[()]:
    return ()


class Consensus:
    """The core: feed it `handle(event)`, carry out the actions it returns."""

    def __init__(
        self,
        params: Params,
        keys: Mapping[int, Leader],
        ledger: Ledger,
        verifier: Verifier,
        tip: Tip,
        payload: PayloadSource = _no_payload,
        signed: SignedLog | None = None,
    ) -> None:
        """A decided block goes out as `Commit`, the last action of its list; the next round
        begins when the caller answers `Committed` (`echorand.core.executor`), so that a real
        ledger has applied the block: the next round's stake table and its producer's
        payload (`payload`) see it.

        `signed` is what this node signed before (its durable records, after a restart):
        it never signs anything else for those slots (PROTOCOL §6)."""
        self.params = params
        self.keys = keys
        self.ledger = ledger
        self.verifier = verifier
        self.payload = payload
        self.tip = tip
        self.signed = SignedLog() if signed is None else signed
        self.stats: Counter[str] = Counter()
        """Messages dropped (by `DropReason`) or accepted (`ACCEPTED`); certificates refused."""
        self.round: Round | None = None
        self._seen: set[bytes] = set()
        self._best: dict[type, int] = {}
        self._buffer: list[ConsensusMessage] = []
        self._buffered: set[bytes] = set()
        self._fetching: bytes | None = None
        self._pending_cert: Certificate | None = None
        self._last_sync_ms: int | None = None
        self._finals: dict[int, FinalTally] = {}
        """The final votes of the current round and the FINAL_WINDOW before it."""
        self._committed: dict[int, bytes] = {tip.round: tip.block_hash}
        """H(B_r) of the rounds this core committed (and the tip it started on), recent ones."""
        self.halted: str | None = None
        """Why consensus stopped, once a certificate conflicted with a final block."""
        self._suspected = False
        """Whether this round already asked to compare chains (`SuspectFork`)."""
        self.decided_elsewhere = False
        """The round decided a block that does not extend our tip (votes from another fork;
        it waits for the fork choice). If that keeps our chain, the executor restarts the
        core on our tip (the signed log keeps it from signing anything new in a filled slot)."""
        self._ahead: dict[int, BbaSignature] = {}
        """Each sender's latest verified vote of a step beyond the window."""
        self._committing: tuple[Block, Certificate] | None = None
        """The block of the `Commit` out, until the caller answers `Committed`."""
        self._after_commit: tuple[tuple[Block, Certificate], ...] = ()
        """Certified blocks from sync that wait for the commit before them."""

    @property
    def current_round(self) -> int:
        return self.tip.round + 1

    @property
    def window_step(self) -> int:
        """The last step whose votes are judged now: the current step + μ."""
        assert self.round is not None
        return self.round.step + self.params.mu

    # --- events ---------------------------------------------------------------

    def start(self, now_ms: int) -> list[Action]:
        """Begin round tip.round + 1."""
        out: list[Action] = []
        self._begin_round(now_ms, out)
        self._settle(now_ms, out)
        return out

    def handle(self, event: Event) -> list[Action]:
        out: list[Action] = []
        if self.round is None:
            raise RuntimeError("call start() before handle()")
        if isinstance(event, Committed):
            self._committed_block(event, out)
        elif self._committing is not None:
            raise RuntimeError("Commit is answered by Committed before any other event")
        if self.halted is not None:
            return out
        match event:
            case MessagesReceived(now_ms, messages):
                self._receive(messages, now_ms, out)
            case TimerFired(now_ms, round, step, kind) if round == self.current_round:
                self.round.on_timer(step, kind, now_ms)
                if self._buffer:
                    self._sync(now_ms, out)
                if self.round.step > self.params.mu and not self._suspected:
                    # Past mu without a decision: the usual cause beyond a partition is a fork
                    # whose other side waits for us. Compare chains with the peers, once.
                    self._suspected = True
                    out.append(SuspectFork(round, self.round.ctx.prev_hash, PAST_MU))
            case BlockValidated(now_ms, block_hash, ok):
                self.round.on_block_validated(block_hash, ok, now_ms)
            case BlockReceived(now_ms, block):
                self._block_received(block, now_ms, out)
            case CertifiedBlocksReceived(now_ms, blocks):
                self._certified_blocks(blocks, now_ms, out)
            case _:
                pass
        self._settle(event.now_ms, out)
        return out

    # --- messages ---------------------------------------------------------------

    def _receive(
        self, messages: tuple[ConsensusMessage, ...], now_ms: int, out: list[Action]
    ) -> None:
        r = self.current_round
        current: list[ConsensusMessage] = []
        late_finals: list[FinalVote] = []
        keys: list[bytes] = []
        batch: set[bytes] = set()
        for msg in messages:
            key = digest(msg.encode())
            if key in self._seen or (msg.round == r and key in batch):
                self.stats[DropReason.DUPLICATE] += 1
            elif msg.round == r:
                current.append(msg)
                keys.append(key)
                batch.add(key)
            elif msg.round == r + 1:
                self._hold(msg, key)
            elif msg.round > r + 1:
                self.stats[DropReason.FUTURE_ROUND] += 1
                self._sync(now_ms, out)
            elif isinstance(msg, FinalVote) and msg.round in self._finals:
                self._seen.add(key)
                late_finals.append(msg)
            else:
                self.stats[DropReason.OLD_ROUND] += 1
        if current:
            self._apply(current, keys, now_ms, out)
        if late_finals:
            self._late_finals(late_finals, out)

    def _apply(
        self, messages: list[ConsensusMessage], keys: list[bytes], now_ms: int, out: list[Action]
    ) -> None:
        """Verify and count the messages of the current round; only the digests of those
        that verified are remembered (`_seen`): a forged copy hides nothing."""
        rnd = self.round
        assert rnd is not None
        verdicts = verify_messages(
            messages, rnd.ctx, self.ledger.public_key, self.verifier, self.window_step
        )
        ahead: list[BbaSignature] = []
        for verdict, key in zip(verdicts, keys, strict=True):
            msg = verdict.message
            if verdict.reason is not None:
                self.stats[verdict.reason] += 1
                if verdict.reason.malicious:
                    out.append(Disconnect(msg, verdict.reason))
                elif verdict.reason == DropReason.WRONG_PREVIOUS_BLOCK and not self._suspected:
                    # a producer of this round builds on another chain: compare (PROTOCOL §6)
                    self._suspected = True
                    out.append(SuspectFork(rnd.ctx.round, rnd.ctx.prev_hash, OTHER_PARENT))
                elif verdict.reason == DropReason.STEP_AHEAD and isinstance(msg, BbaSignature):
                    ahead.append(msg)
                continue
            self._seen.add(key)
            if isinstance(msg, FinalVote):
                counted = self._count_final(msg, out)
            else:
                counted = self._count(rnd, msg, now_ms)
            self.stats[ACCEPTED if counted else DropReason.REPEAT_OR_CONFLICT] += 1
            priority = (
                rnd.ctx.priority(msg.sender) if isinstance(msg, GcBlock | GcSignature) else None
            )
            best = self._best.get(type(msg))
            if should_relay(msg, counted=counted, priority=priority, best_before=best):
                out.append(Relay(msg))
            if counted and priority is not None and (best is None or priority < best):
                self._best[type(msg)] = priority
        if ahead:
            self._catch_up(ahead, now_ms, out)

    def _catch_up(self, ahead: list[BbaSignature], now_ms: int, out: list[Action]) -> None:
        """Step catch-up (docs/protocol.md §7). Each sender's latest vote beyond the window is
        verified and kept; when the senders whose latest votes are at steps `s` or later hold
        more than N_c - t_h seats (each in the committee of its own step), no step before
        `s` can gather a quorum any more (those voters never go back): the node skips to the
        highest such `s`, abstaining in between, and counts what it kept. Without it, a node
        that starts a round late (after a partition, a pause) stays more than `mu` steps
        behind nodes that stall there, and no group ever reaches `t_h` again. Skipping only
        abstains: what a node then votes is what a node whose messages were lost would."""
        rnd = self.round
        assert rnd is not None
        newer = [m for m in ahead if m.step > self._ahead_step(m.sender)]
        if not newer:
            return
        top = max(m.step for m in newer)
        verdicts = verify_messages(newer, rnd.ctx, self.ledger.public_key, self.verifier, top)
        for verdict in verdicts:
            msg = verdict.message
            if verdict.reason is not None:
                if verdict.reason.malicious:
                    out.append(Disconnect(msg, verdict.reason))
            elif msg.step > self._ahead_step(msg.sender):
                assert isinstance(msg, BbaSignature)
                self._ahead[msg.sender] = msg
        gone = self.params.n_c - self.params.t_h
        weight = 0
        for msg in sorted(self._ahead.values(), key=lambda m: -m.step):
            weight += rnd.ctx.weight(msg.step, msg.sender)
            if weight <= gone:
                continue
            if rnd.catch_up(msg.step, now_ms):
                self.stats["caught up"] += 1
                kept = sorted(self._ahead.values(), key=lambda m: m.step)
                self._ahead = {}
                self._apply(kept, [digest(m.encode()) for m in kept], now_ms, out)
            return

    def _ahead_step(self, sender: int) -> int:
        kept = self._ahead.get(sender)
        return 0 if kept is None else kept.step

    @staticmethod
    def _count(rnd: Round, msg: ConsensusMessage, now_ms: int) -> bool:
        if isinstance(msg, GcBlock):
            return rnd.on_gc_block(msg, now_ms)
        if isinstance(msg, GcSignature):
            return rnd.on_gc_signature(msg, now_ms)
        if isinstance(msg, GcProposal):
            return rnd.on_gc_proposal(msg, now_ms)
        if isinstance(msg, GcSubstitute | BbaSubstitute):
            return rnd.on_substitute(msg, now_ms)
        assert isinstance(msg, BbaSignature)
        return rnd.on_bba_signature(msg, now_ms)

    # --- final votes (PROTOCOL §6) -------------------------------------------------

    def _late_finals(self, messages: list[FinalVote], out: list[Action]) -> None:
        """Final votes of rounds this node has committed (they follow the decision): checked
        against their round's final committee, counted, relayed once."""
        by_round: dict[int, list[FinalVote]] = {}
        for msg in messages:
            by_round.setdefault(msg.round, []).append(msg)
        for round, msgs in by_round.items():
            ctx = self._finals[round].ctx
            for verdict in verify_messages(msgs, ctx, self.ledger.public_key, self.verifier, 0):
                if verdict.reason is not None:
                    self.stats[verdict.reason] += 1
                    if verdict.reason.malicious:
                        out.append(Disconnect(verdict.message, verdict.reason))
                    continue
                assert isinstance(verdict.message, FinalVote)
                counted = self._count_final(verdict.message, out)
                self.stats[ACCEPTED if counted else DropReason.REPEAT_OR_CONFLICT] += 1
                if counted:
                    out.append(Relay(verdict.message))

    def _count_final(self, msg: FinalVote, out: list[Action]) -> bool:
        tally = self._finals[msg.round]
        before = tally.decided
        counted = tally.add(msg)
        if before is None and tally.decided is not None:
            self._final(tally.decided, out)
        return counted

    def _final(self, cert: FinalCertificate, out: list[Action]) -> None:
        """A block's final votes passed t_f: final if it is the block this node committed;
        a conflict halts consensus (it needs an adversary beyond f)."""
        committed = self._committed.get(cert.round)
        if committed is None:
            return  # the round is not committed here yet: checked at its commit
        if committed == cert.block_hash:
            out.append(Finalized(cert))
        else:
            self._halt(
                f"round {cert.round}: a final certificate for {cert.block_hash.hex()[:16]}.."
                f" conflicts with the block this node committed, {committed.hex()[:16]}..",
                (cert,),
                out,
            )

    def _halt(self, reason: str, evidence: tuple[object, ...], out: list[Action]) -> None:
        self.halted = reason
        self.stats["halted"] += 1
        out.append(Halted(reason, evidence))

    def _hold(self, msg: ConsensusMessage, key: bytes) -> None:
        if key in self._buffered:
            self.stats[DropReason.DUPLICATE] += 1
        elif len(self._buffer) >= MAX_BUFFERED:
            self.stats[DropReason.BUFFER_FULL] += 1
        else:
            self._buffered.add(key)
            self._buffer.append(msg)

    # --- decisions and commits ------------------------------------------------------

    def _settle(self, now_ms: int, out: list[Action]) -> None:
        """Collect the round's actions; commit once it has decided and holds the block."""
        while self.round is not None and self._committing is None:
            rnd = self.round
            self._own_actions(rnd.drain(), out)
            if rnd.decision is None or self._fetching is not None:
                return
            vote = rnd.decision[1]
            cert = rnd.certificate()
            if vote.b == 1:
                block = Block.empty(rnd.ctx.round, rnd.ctx.prev_hash)
            else:
                block = rnd.gc.block(vote.value[0])
                if block is None:
                    self._fetching = vote.value[0]
                    self._pending_cert = cert
                    out.append(FetchBlock(rnd.ctx.round, vote.value[0]))
                    return
            self._commit(block, cert, now_ms, out)

    def _own_actions(self, actions: list[Action], out: list[Action]) -> None:
        """The round's actions, out; this node's own messages are seen (a copy relayed back
        is a duplicate), and its own final votes weigh in the final tally like anyone's."""
        for action in actions:
            out.append(action)
            if isinstance(action, Send):
                self._seen.add(digest(action.message.encode()))
                if isinstance(action.message, FinalVote):
                    self._count_final(action.message, out)

    def _block_received(self, block: Block, now_ms: int, out: list[Action]) -> None:
        if self._fetching is None or block.hash != self._fetching:
            self.stats[DropReason.UNEXPECTED_BLOCK] += 1
            return
        cert = self._pending_cert
        assert cert is not None
        if block.round != cert.round or block.producer != cert.leader:
            self.stats[DropReason.UNEXPECTED_BLOCK] += 1
            return
        if block.prev_hash != self.tip.block_hash:
            # The votes decided a block of another chain: this node is on a fork. It never
            # commits a block that does not extend its tip; the fork choice settles it.
            self.stats["decided block of another chain"] += 1
            self.decided_elsewhere = True
            out.append(SuspectFork(block.round, block.hash))
            return
        self._fetching = None
        self._commit(block, cert, now_ms, out)

    def _certified_blocks(
        self, blocks: Sequence[tuple[Block, Certificate]], now_ms: int, out: list[Action]
    ) -> None:
        """Certified blocks from sync (PROTOCOL §6). Blocks of committed rounds are the
        executor's to compare with what it holds. A certificate for the round this node runs
        is the votes of one deciding step: if the node has not decided, it decides from them
        as from votes that arrived by gossip; if it decided the same, the block answers its
        fetch; if it decided otherwise, the two certificates are fork evidence, and nothing is
        committed."""
        for i, (block, cert) in enumerate(blocks):
            if self._committing is not None:
                self._after_commit = tuple(blocks[i:])
                return
            if block.round < self.current_round:
                continue
            rnd = self.round
            if block.round > self.current_round or rnd is None:
                return
            try:
                check_certificate(cert, block, rnd.ctx, self.ledger.public_key, self.verifier)
            except CertificateError:
                self.stats[DropReason.BAD_CERTIFICATE] += 1
                return
            if rnd.decision is None:
                rnd.adopt(cert)  # the certificate's block came with it: no fetch
                self._fetching = None
                self._commit(block, cert, now_ms, out)
                continue
            ours = rnd.certificate()
            if ours.value != cert.value:
                self.stats["fork evidence"] += 1
                out.append(ForkEvidence(block.round, ours, cert, block))
                final = self._finals[block.round].decided
                if final is not None and final.block_hash == ours.block_hash:
                    self._halt(
                        f"round {block.round}: a certificate for {cert.block_hash.hex()[:16]}.."
                        " conflicts with the final block this node decided",
                        (final, cert),
                        out,
                    )
                return
            if self._fetching == block.hash:
                self._fetching = None
                self._commit(block, ours, now_ms, out)

    def _commit(self, block: Block, cert: Certificate, now_ms: int, out: list[Action]) -> None:
        """Out goes `Commit`; nothing else happens until the caller answers `Committed`."""
        out.append(Commit(block, cert))
        self._committing = (block, cert)

    def _committed_block(self, event: Committed, out: list[Action]) -> None:
        """The caller holds the block of `Commit`: it is the tip, and the next round begins
        (then the certified blocks from sync that came after it)."""
        pending = self._committing
        if pending is None or (pending[0].round, pending[0].hash) != (
            event.round,
            event.block_hash,
        ):
            raise RuntimeError(f"Committed round {event.round} answers no Commit")
        block, cert = pending
        self._committing = None
        now_ms = event.now_ms
        self.tip = self.tip.after(block, self.params, cert)
        self._committed[block.round] = block.hash
        final = self._finals.get(block.round)
        if final is not None and final.decided is not None:
            self._final(final.decided, out)
        if self.halted is None:
            self._begin_round(now_ms, out)
        rest, self._after_commit = self._after_commit, ()
        if rest and self.halted is None:
            self._certified_blocks(rest, now_ms, out)

    def _finished_context(self) -> RoundContext | None:
        """The context of round r - 1 when B_{r-1} is a proposed block whose certificate the
        blocks of round r carry and that round just finished here (else `tip_context`
        rebuilds it from `tip.previous`)."""
        tip = self.tip
        if tip.producer is None or self.round is None or self.round.ctx.round != tip.round:
            return None
        finished = self.round.ctx
        finished.previous = None  # only one round back is ever needed: no chain of them
        return finished

    def _begin_round(self, now_ms: int, out: list[Action]) -> None:
        ctx = tip_context(self.params, self.ledger, self.tip, self._finished_context())
        self.signed.prune(ctx.round)
        self._finals[ctx.round] = FinalTally(ctx)
        oldest = ctx.round - FINAL_WINDOW
        self._finals = {r: t for r, t in self._finals.items() if r >= oldest}
        self._committed = {r: h for r, h in self._committed.items() if r >= oldest}
        self.round = Round(ctx, self.keys, now_ms, self.payload, self.signed)
        self._suspected = False
        self.decided_elsewhere = False
        self._seen = set()
        self._best = {}
        self._ahead = {}
        self._fetching = None
        self.round.start()
        held, self._buffer, self._buffered = self._buffer, [], set()
        self._own_actions(self.round.drain(), out)
        if held:
            self._receive(tuple(held), now_ms, out)

    def _sync(self, now_ms: int, out: list[Action]) -> None:
        """Ask for certified blocks from the current round on, at most once per 2λ + Λ."""
        interval = 2 * self.params.lam_ms + self.params.big_lam_ms
        if self._last_sync_ms is not None and now_ms - self._last_sync_ms < interval:
            return
        self._last_sync_ms = now_ms
        out.append(Sync(self.current_round))
