"""One round as a state machine: step 1 (producers), graded consensus, BBA.

The round is fed messages that `echorand.core.validate` has already checked,
timer expiries and block-validation answers; it queues actions (`drain()`).
It acts for each local account that holds seats in a step, once per
account (the whitepaper's VRFN), signing with that account's key.

Timers, from the round's start `T0` (when CERT_{r-1} was determined):
step 2 chooses the leader at `T0 + 2λ` and gives up on its block at
`T0 + λ + Λ`; step 3 ends at `T0 + 3λ + Λ`; step `s >= 4` ends `2λ` after
step `s - 1` ended. A step ends earlier as soon as a threshold is reached.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

from echorand.core.bba import (
    StepVotes,
    Vote,
    build_certificate,
    coin,
    deciding_vote,
    run_step,
    vote,
)
from echorand.core.events import Action, Send, SetTimer, TimerKind, ValidateBlock
from echorand.core.gc import GradedConsensus
from echorand.core.signed import SignedLog, Slot
from echorand.protocol.committee import RoundContext
from echorand.protocol.delegation import (
    Mode,
    Substitute,
    sign_bba_substitute,
    sign_gc_substitute,
)
from echorand.protocol.seeds import VRF
from echorand.protocol.signing import (
    Leader,
    sign_block,
    sign_final,
    sign_gc_block,
    sign_gc_signature,
    sign_proposal,
    sign_vote,
)
from echorand.protocol.tally import Value
from echorand.wire.messages import (
    FINAL_STEP,
    BbaSignature,
    BbaSubstitute,
    Certificate,
    ConsensusMessage,
    FinalVote,
    GcBlock,
    GcProposal,
    GcSignature,
    GcSubstitute,
    Transaction,
)

PayloadSource = Callable[[int], Sequence[Transaction]]
"""PAY_r: the transactions a producer puts in its block of round r (from its mempool)."""

M = TypeVar("M", bound=ConsensusMessage)


class StepSubstitutes:
    """The substitutes of one step at one node (docs/protocol.md §16): the best one held
    per principal (explicit before fallback), which principals spoke themselves, which
    are counted through a substitute, and whether the step's interval has ended."""

    __slots__ = ("closed", "counted", "held", "own")

    def __init__(self) -> None:
        self.held: dict[int, Substitute] = {}
        self.own: set[int] = set()
        self.counted: dict[int, int] = {}
        self.closed = False

    def hold(self, msg: Substitute) -> bool:
        """Keep `msg` if it is better than what is held for its principal; False if not."""
        if msg.principal in self.own:
            return False
        held = self.held.get(msg.principal)
        if held is not None and held.mode <= msg.mode:
            return False
        self.held[msg.principal] = msg
        return True

    def countable(self, principal: int) -> Substitute | None:
        """The held substitute to count now for `principal`, if the interval has ended, the
        principal has not spoken, and it beats what is counted."""
        msg = self.held.get(principal)
        if not self.closed or msg is None or principal in self.own:
            return None
        counted = self.counted.get(principal)
        return msg if counted is None or msg.mode < counted else None


class Round:
    """The state of round r at one node."""

    def __init__(
        self,
        ctx: RoundContext,
        keys: Mapping[int, Leader],
        start_ms: int,
        payload: PayloadSource,
        signed: SignedLog | None = None,
    ) -> None:
        self.ctx = ctx
        self.keys = keys
        self.start_ms = start_ms
        self.payload = payload
        self.signed = SignedLog() if signed is None else signed
        """Every slot this node filled (PROTOCOL §6): consulted before each signature."""
        self.gc = GradedConsensus(ctx.params.t_h, ctx.empty_value)
        self.votes: dict[int, StepVotes] = {}
        self.subs: dict[int, StepSubstitutes] = {}
        self.values: dict[int, Value | Vote] = {}
        """This node's value (steps 2, 3) or vote (steps >= 4) in each step it completed."""
        self.step = 2
        """The step this node works on now (it has acted in every step before it)."""
        self.own_value: Value = ctx.empty_value
        self.decision: tuple[int, Vote] | None = None
        """(the step whose votes decided, the decided vote), once decided."""
        self.decided_votes: StepVotes | None = None
        """The deciding step's votes as they were at the decision: the certificate."""
        self._adopted: Certificate | None = None
        self._leader_time = False
        self._finished = False
        self._finishing = False
        self._final_done = False
        self.sealed = self._final_slot_filled()
        """Whether this node sent final votes in the round (PROTOCOL §6): it then signs no
        new vote of the round, so that it never helps a certificate against a final block
        (kept across a restart through the signed log)."""
        self._expired: set[int] = set()
        self._requested: set[bytes] = set()
        self._out: list[Action] = []

    # --- interface ---------------------------------------------------------

    def drain(self) -> list[Action]:
        """The actions queued since the last call."""
        out, self._out = self._out, []
        return out

    def start(self) -> None:
        """Step 1 (block generation) and the timers of steps 2 and 3; after a restart in a
        round where this node sent final votes, those again."""
        p, r, t0 = self.ctx.params, self.ctx.round, self.start_ms
        self._produce()
        if self.sealed:
            for record in self.signed:
                msg = record.message
                if msg.round == r and isinstance(msg, FinalVote):
                    self._send(msg)
        self._out.append(SetTimer(t0 + 2 * p.lam_ms, r, 2, TimerKind.LEADER))
        self._out.append(SetTimer(t0 + p.lam_ms + p.big_lam_ms, r, 2, TimerKind.DEADLINE))
        self._out.append(SetTimer(t0 + 3 * p.lam_ms + p.big_lam_ms, r, 3, TimerKind.DEADLINE))

    def on_timer(self, step: int, kind: TimerKind, now_ms: int) -> None:
        if kind is TimerKind.LEADER:
            if not self._leader_time:
                self._leader_time = True
                self.gc.choose_leader()
        else:
            self._expired.add(step)
            self._close_interval(step)
        self._advance(now_ms)
        if kind is TimerKind.DEADLINE:
            self._substitute(step)
            self._advance(now_ms)

    def catch_up(self, step: int, now_ms: int) -> bool:
        """Skip to `step` (`echorand.core.consensus`: most of the committee is there), abstaining in
        the steps between; its timer is set as if the step before had just completed. False,
        and nothing changes, once decided or when `step` is not ahead of the BBA steps."""
        if self.decision is not None or step <= max(self.step, 4):
            return False
        self.step = step
        at = now_ms + 2 * self.ctx.params.lam_ms
        self._out.append(SetTimer(at, self.ctx.round, step, TimerKind.DEADLINE))
        self._advance(now_ms)
        return True

    def on_block_validated(self, block_hash: bytes, ok: bool, now_ms: int) -> None:
        self.gc.set_valid(block_hash, ok)
        self._advance(now_ms)

    def on_gc_signature(self, msg: GcSignature, now_ms: int) -> bool:
        """A producer's seed signature and block hash; False if it conflicts with an earlier one."""
        priority = self.ctx.priority(msg.sender)
        assert priority is not None, "validated: the sender is in A_1"
        if not self.gc.add_proposal(msg.sender, priority, msg.block_hash):
            return False
        self._advance(now_ms)
        return True

    def on_gc_block(self, msg: GcBlock, now_ms: int) -> bool:
        """A producer's block; asks the ledger to check its payload if it could lead."""
        priority = self.ctx.priority(msg.sender)
        assert priority is not None, "validated: the sender is in A_1"
        if not self.gc.add_block(msg.sender, priority, msg.block):
            return False
        self._advance(now_ms)
        return True

    def on_gc_proposal(self, msg: GcProposal, now_ms: int) -> bool:
        """A step-2 or step-3 vote; False if the signer already voted or the value conflicts."""
        if self.gc.conflicts(msg.value):
            return False
        if not self._count_gc(msg.step, msg.sender, msg.value, Mode.OWN):
            return False
        self._advance(now_ms)
        return True

    def on_bba_signature(self, msg: BbaSignature, now_ms: int) -> bool:
        """A vote of step 4 or later; False if the signer already voted in that step."""
        vote = Vote(msg.b, msg.value)
        if not self._count_own_bba(msg.step, msg.sender, vote, msg.cert_sig):
            return False
        self._advance(now_ms)
        return True

    def on_substitute(self, msg: Substitute, now_ms: int) -> bool:
        """A substitute in a principal's seats (validated: its signer may speak there). Held
        until the step's interval ends; False if the principal spoke, or a substitute as
        good is held (a repeat or an equivocation)."""
        if isinstance(msg, GcSubstitute) and self.gc.conflicts(msg.value):
            return False
        subs = self.step_subs(msg.step)
        if not subs.hold(msg):
            return False
        self._count_held(msg.step, msg.principal)
        self._advance(now_ms)
        return True

    def adopt(self, cert: Certificate) -> None:
        """Decide from a verified certificate of this round (the votes of one deciding step,
        from sync): as if its votes had arrived by gossip."""
        assert self.decision is None and cert.round == self.ctx.round
        self.decision = (cert.step, Vote(cert.b, cert.value))
        self._adopted = cert

    def certificate(self) -> Certificate:
        """CERT_r of the decision: the deciding step's votes at the decision (or the
        certificate the decision was adopted from)."""
        assert self.decision is not None
        if self._adopted is not None:
            return self._adopted
        step, vote = self.decision
        votes = self.decided_votes or self.votes[step]
        return build_certificate(self.ctx.round, step, vote, votes)

    def step_subs(self, step: int) -> StepSubstitutes:
        subs = self.subs.get(step)
        if subs is None:
            subs = self.subs[step] = StepSubstitutes()
        return subs

    def step_votes(self, step: int) -> StepVotes:
        votes = self.votes.get(step)
        if votes is None:
            votes = self.votes[step] = StepVotes()
        return votes

    # --- step 1 ------------------------------------------------------------

    def _produce(self) -> None:
        """Step 1: the best local producer (N_1[0]) sends gc_block and gc_signature. A node
        without CERT_{r-1} after a proposed block cannot make a valid block and sends none.
        A node that proposed in this round before (it restarted) sends that block again."""
        ctx = self.ctx
        if ctx.prev_producer is not None and ctx.carried is None:
            return
        best = self._best_producer()
        if best is None:
            return
        priority, producer = best
        key, chain, r = self.keys[producer], ctx.chain, ctx.round

        def make_block() -> GcBlock:
            txs = self.payload(r)
            block = sign_block(
                key,
                chain,
                r,
                ctx.prev_hash,
                producer,
                ctx.seed,
                txs,
                ctx.carried,
                seed_mode=ctx.params.seed_mode,
            )
            return sign_gc_block(key, chain, producer, block)

        gc_block = self._own((r, 1, GcBlock.CODE, producer, producer), make_block)
        if gc_block is None:
            return
        block = gc_block.block
        gc_sig = None
        if ctx.params.seed_mode != VRF:  # its `rand` holds a signature, not a proof
            gc_sig = self._own(
                (r, 1, GcSignature.CODE, producer, producer),
                lambda: sign_gc_signature(key, chain, producer, block),
            )
        self.gc.add_block(producer, priority, block)
        self.gc.set_valid(block.hash, True)
        self._send(gc_block)
        if gc_sig is not None:
            self._send(gc_sig)

    def _own(self, slot: Slot, make: Callable[[], M]) -> M | None:
        """The message for `slot` (PROTOCOL §6): the one this node signed for it before, if
        on this H(B_{r-1}); None — abstain — if on another fork (the node rolled back since);
        else a new one, `make()`, recorded before it is sent."""
        known = self.signed.get(slot)
        if known is not None:
            if known.prev_hash != self.ctx.prev_hash:
                return None
            return known.message  # type: ignore[return-value]
        if self.sealed and slot[1] != FINAL_STEP and not self._finishing:
            return None  # final votes sent (now or before a restart): nothing new in the round
        msg = make()
        self.signed.add(self.ctx.prev_hash, msg)
        return msg

    def _send(self, msg: ConsensusMessage) -> None:
        self._out.append(Send(msg, self.ctx.prev_hash))

    def _best_producer(self) -> tuple[int, int] | None:
        """(priority, account) of the local account with the best priority in A_1: the
        first producer seat held locally. O(N_g), whatever the number of local accounts."""
        keys = self.keys
        for index, producer in enumerate(self.ctx.producer_seats()):
            if producer in keys:
                return index, producer
        return None

    # --- steps 2.. -----------------------------------------------------------

    def _advance(self, now_ms: int) -> None:
        """Complete steps for as long as their conditions hold."""
        self._request_validation()
        while self.decision is None and self._try_step(now_ms):
            pass
        if self.decision is not None and not self._final_done:
            self._final()
        if self.decision is not None and not self._finished and self.ctx.substitutes:
            self._finish()

    def _final(self) -> None:
        """Final votes (PROTOCOL §6), once: when the decision came from the first deciding
        step's votes — step 4's b = 0, step 5's b = 1 — and no local account signed a later
        vote of the round, every local account with seats in the final committee says so.

        A decided block is final-voted only once the node holds it (a `gc_block` of this
        round, so built on our H(B_{r-1})): votes name a block by its hash alone, and where
        voters hold seats on two forks (after a partition) the votes of one can decide a
        block of the other. Such a block must not become final through us; it is fetched,
        and the fork choice decides. (The empty value names our chain itself.)"""
        assert self.decision is not None
        step, vote = self.decision
        if vote.b == 0 and self.gc.block(vote.value[0]) is None:
            return  # again when the block comes (if it comes before any later vote)
        self._final_done = True
        if (step, vote.b) not in ((4, 0), (5, 1)) or self._signed_after(step):
            return
        ctx = self.ctx
        r, chain, block_hash = ctx.round, ctx.chain, vote.value[0]
        for account, _ in self._local_seats(FINAL_STEP):
            key = self.keys[account]
            msg = self._own(
                (r, FINAL_STEP, FinalVote.CODE, account, account),
                lambda k=key, a=account: sign_final(k, chain, r, a, block_hash),
            )
            if msg is not None:
                self._send(msg)
        self.sealed = True

    def _signed_after(self, step: int) -> bool:
        """Whether a local account signed a vote of this round in a step after `step`."""
        r = self.ctx.round
        return any(
            record.message.round == r and step < record.message.step < FINAL_STEP
            for record in self.signed
        )

    def _final_slot_filled(self) -> bool:
        """Whether this node's accounts sent final votes in this round on this fork."""
        r, prev = self.ctx.round, self.ctx.prev_hash
        return any(
            record.message.round == r
            and isinstance(record.message, FinalVote)
            and record.prev_hash == prev
            for record in self.signed
        )

    def _finish(self) -> None:
        """Once decided, vote the decision in the three steps after the deciding one (those
        this node has not voted in), as BA* does: a node that decided and went quiet would
        look absent, and substitutes would fill its seats with other values (§16)."""
        self._finished = True
        assert self.decision is not None
        step, vote = self.decision
        self._finishing = True  # votes for the decision itself: allowed after final votes
        try:
            for later in range(max(self.step, step + 1), step + 4):
                if later >= 4 and self._local_seats(later):
                    self._vote(later, vote)
        finally:
            self._finishing = False

    def _try_step(self, now_ms: int) -> bool:
        s = self.step
        timed_out = s in self._expired
        if s == 2:
            if not (self._leader_time or timed_out):
                return False
            value = self.gc.step2_value(timed_out)
            if value is None:
                return False
            self._propose(2, value)
        elif s == 3:
            value = self.gc.step3_value(timed_out)
            if value is None:
                return False
            self._propose(3, value)
        elif s == 4:
            graded = self.gc.step4_value(timed_out)
            if graded is None:
                return False
            self.own_value = graded.value
            self._vote(4, vote(graded.b, graded.value, self.ctx.empty_value))
        else:
            p, ctx = self.ctx.params, self.ctx
            outcome = run_step(
                s,
                self.step_votes(s - 1),
                p.t_h,
                self.own_value,
                ctx.empty_value,
                coin(ctx.seed, ctx.round, s),
                past_mu=s > p.mu,
                timed_out=timed_out,
            )
            if outcome is None:
                return False
            if outcome.decided:
                self.decision = (s - 1, outcome.vote)
                self.decided_votes = self.step_votes(s - 1).snapshot()
                return False
            if outcome.vote.b == 0:
                self.own_value = outcome.vote.value
            self._vote(s, outcome.vote)
        self.step = s + 1
        if self.step >= 4:
            at = now_ms + 2 * self.ctx.params.lam_ms
            self._out.append(SetTimer(at, self.ctx.round, self.step, TimerKind.DEADLINE))
        return True

    def _propose(self, step: int, value: Value) -> None:
        """gc_proposal {r, s, id, v} for each local account in A_s (counted here too); an
        account that proposed in this step before (a restart) sends the same again."""
        self.values[step] = value
        ctx, code = self.ctx, GcProposal.CODE
        for account, _ in self._local_seats(step):
            key = self.keys[account]
            msg = self._own(
                (ctx.round, step, code, account, account),
                lambda k=key, a=account: sign_proposal(k, ctx.chain, ctx.round, step, a, value),
            )
            if msg is None:
                continue
            self._count_gc(step, account, msg.value, Mode.OWN)
            self._send(msg)

    def _vote(self, step: int, vote: Vote) -> None:
        """bba_signature {r, s, id, b, v, sig(r, s, b, v)} for each local account in A_s; an
        account that voted in this step before (a restart) sends the same vote again."""
        self.values[step] = vote
        ctx, code = self.ctx, BbaSignature.CODE
        for account, _ in self._local_seats(step):
            key = self.keys[account]
            msg = self._own(
                (ctx.round, step, code, account, account),
                lambda k=key, a=account: sign_vote(
                    k, ctx.chain, ctx.round, step, a, vote.b, vote.value
                ),
            )
            if msg is None:
                continue
            self._count_own_bba(step, account, Vote(msg.b, msg.value), msg.cert_sig)
            self._send(msg)

    def _local_seats(self, step: int) -> list[tuple[int, int]]:
        """VRFN(r, s): (account, seats) of each local account in A_step, ascending ids.
        The committee's accounts are intersected with the local keys: O(N_c log N_c),
        whatever the number of local accounts."""
        weights, keys = self.ctx.weights(step), self.keys
        return [(a, weights[a]) for a in sorted(weights) if a in keys]

    def _count_gc(self, step: int, principal: int, value: Value, mode: int) -> bool:
        """Count `principal`'s seats of step 2 or 3 for `value`: its own vote (once; it
        replaces a counted substitute) or a substitute (replacing a worse one)."""
        tally = self.gc.step2 if step == 2 else self.gc.step3
        weight = self.ctx.weight(step, principal)
        subs = self.step_subs(step)
        if mode == Mode.OWN:
            if principal in subs.own:
                return False
            subs.own.add(principal)
            if subs.counted.pop(principal, None) is None:
                return tally.add(principal, weight, value)
        else:
            subs.counted[principal] = mode
        tally.replace(principal, weight, value)
        return True

    def _count_own_bba(self, step: int, principal: int, vote: Vote, cert_sig: bytes) -> bool:
        """Count a principal's own BBA vote: once, replacing a counted substitute."""
        subs = self.step_subs(step)
        if principal in subs.own:
            return False
        subs.own.add(principal)
        weight = self.ctx.weight(step, principal)
        votes = self.step_votes(step)
        if subs.counted.pop(principal, None) is None:
            votes.add(principal, weight, vote, cert_sig)
        else:
            votes.put(principal, weight, vote, cert_sig, principal, Mode.OWN)
        self._check_decision(step)
        return True

    def _check_decision(self, step: int) -> None:
        if self.decision is None:
            votes = self.step_votes(step)
            decided = deciding_vote(step, votes, self.ctx.params.t_h)
            if decided is not None:
                self.decision = (step, decided)
                self.decided_votes = votes.snapshot()

    # --- substitutes (docs/protocol.md §16) ------------------------------------------

    def _close_interval(self, step: int) -> None:
        """The step's timer fired: count the held substitutes of principals who did not speak."""
        subs = self.step_subs(step)
        if subs.closed:
            return
        subs.closed = True
        for principal in sorted(subs.held):
            self._count_held(step, principal)

    def _count_held(self, step: int, principal: int) -> None:
        subs = self.step_subs(step)
        msg = subs.countable(principal)
        if msg is None:
            return
        subs.counted[principal] = msg.mode
        if isinstance(msg, GcSubstitute):
            self._count_gc(step, principal, msg.value, msg.mode)
            return
        weight = self.ctx.weight(step, principal)
        vote = Vote(msg.b, msg.value)
        self.step_votes(step).put(principal, weight, vote, msg.cert_sig, msg.sender, msg.mode)
        self._check_decision(step)

    def _substitute(self, step: int) -> None:
        """At the end of step `step`'s interval: speak, with this node's value of the step,
        in the seats of every principal this node's accounts substitute and that did not
        speak (for a fallback: nor its explicit delegate)."""
        value = self.values.get(step)
        if value is None or self.decision is not None:
            return
        subs = self.step_subs(step)
        ctx = self.ctx
        for principal in sorted(ctx.weights(step)):
            if principal in self.keys or principal in subs.own:
                continue
            held = subs.held.get(principal)
            delegate = ctx.delegate(principal)
            if delegate is not None and delegate in self.keys:
                signer, mode = delegate, Mode.EXPLICIT
            else:
                fallback = ctx.fallback(step, principal)
                if fallback is None or fallback not in self.keys:
                    continue
                signer, mode = fallback, Mode.FALLBACK
            if held is not None and held.mode <= mode:
                continue
            msg = self._sign_substitute(step, signer, principal, mode, value)
            if msg is None:
                continue
            subs.hold(msg)
            self._count_held(step, principal)
            self._send(msg)

    def _sign_substitute(
        self, step: int, signer: int, principal: int, mode: int, value: Value | Vote
    ) -> Substitute | None:
        key, ctx = self.keys[signer], self.ctx
        r, chain = ctx.round, ctx.chain
        if isinstance(value, Vote):
            return self._own(
                (r, step, BbaSubstitute.CODE, signer, principal),
                lambda: sign_bba_substitute(
                    key, chain, r, step, signer, principal, mode, value.b, value.value
                ),
            )
        return self._own(
            (r, step, GcSubstitute.CODE, signer, principal),
            lambda: sign_gc_substitute(key, chain, r, step, signer, principal, mode, value),
        )

    def _request_validation(self) -> None:
        """Ask the ledger about PAY_r of the block that can lead: the leader's, or the best."""
        gc = self.gc
        candidate = gc.proposals.get(gc.leader) if gc.leader is not None else gc.best()
        if candidate is None or candidate.block is None or candidate.valid is not None:
            return
        if candidate.block_hash in self._requested:
            return
        self._requested.add(candidate.block_hash)
        self._out.append(ValidateBlock(candidate.block))
