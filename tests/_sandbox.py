"""A sandbox for one consensus node: a fake clock, hand-made messages from the other accounts,
and every action the node takes collected for the test to check (after Exonum's sandbox)."""

from __future__ import annotations

import hashlib
from itertools import combinations

from echorand.core.consensus import Consensus, Tip
from echorand.core.events import (
    Action,
    BlockReceived,
    BlockValidated,
    CertifiedBlocksReceived,
    Commit,
    Committed,
    MessagesReceived,
    Send,
    SetTimer,
    TimerFired,
)
from echorand.core.round import PayloadSource
from echorand.core.signed import SignedLog
from echorand.core.validate import CachingVerifier, NativeVerifier
from echorand.protocol.committee import RoundContext
from echorand.protocol.params import FINAL_STEP, Params
from echorand.protocol.signing import (
    sign_block,
    sign_final,
    sign_gc_block,
    sign_gc_signature,
    sign_proposal,
    sign_vote,
)
from echorand.protocol.sortition import StakeTable
from echorand.protocol.tally import Value, empty_value
from echorand.wire.crypto import Keypair
from echorand.wire.messages import Block, Certificate, ConsensusMessage

PARAMS = Params(n_g=5, n_c=20, k=2, lam_ms=100, big_lam_ms=300)
"""Small committees: t_h = 13 of 20 seats, mu = 10, max_step = 16."""

CHAIN = hashlib.sha256(b"sandbox genesis").digest()
"""The sandbox's genesis hash: H(B_0), and the chain every signature is bound to."""

EMPTY_VALUE = empty_value(1, CHAIN)
"""{∅, ∅} of round 1: (H(B_ε) of round 1, 2^64 - 1)."""

LOCAL = 0
"""The account the node under test holds."""

N_ACCOUNTS = 16


def key(account: int) -> Keypair:
    return Keypair.from_seed(hashlib.sha256(b"sandbox key %d" % account).digest())


class Ledger:
    """What the core reads of a ledger, for the tests: one stake table for every round, and
    the public keys of `key(a)` for its accounts."""

    def __init__(self, table: StakeTable) -> None:
        self.table = table
        self.keys = [key(a).public_key for a in range(len(table))]

    def stake_table(self, round: int) -> StakeTable:
        return self.table

    def public_key(self, account: int) -> bytes | None:
        return self.keys[account] if 0 <= account < len(self.keys) else None


def _genesis(attempt: int) -> Tip:
    seed = hashlib.sha256(b"sandbox seed %d" % attempt).digest()
    return Tip(0, seed, CHAIN)


class Sandbox:
    """One node holding account LOCAL, started at time 0 in round 1.

    The genesis seed is the first (in a fixed order) for which the local
    account holds seats in every step 1..mu+1 and is not the best producer,
    so that every step makes the node send something and a remote producer
    can lead.
    """

    def __init__(
        self,
        local: tuple[int, ...] = (LOCAL,),
        signed: SignedLog | None = None,
        payload: PayloadSource | None = None,
        params: Params = PARAMS,
    ) -> None:
        self.params = params
        balances = [1_500 if a == LOCAL else 1_000 for a in range(N_ACCOUNTS)]
        self.ledger = Ledger(StakeTable(balances))
        self.verifier = CachingVerifier(NativeVerifier())
        for attempt in range(1_000):
            self.genesis = _genesis(attempt)
            ctx = self.context(1, self.genesis)
            if self._usable(ctx):
                break
        self.keys = {a: key(a) for a in local}
        options = {"signed": signed} if payload is None else {"signed": signed, "payload": payload}
        self.node = Consensus(
            params, self.keys, self.ledger, self.verifier, self.genesis, **options
        )
        self.now = 0
        self.timers: list[SetTimer] = []
        self._actions: list[Action] = []
        self._collect(self.node.start(0))

    def _usable(self, ctx: RoundContext) -> bool:
        if ctx.priority(LOCAL) in (None, 0):
            return False
        return all(ctx.weight(s, LOCAL) > 0 for s in range(2, self.params.mu + 2))

    def context(self, round: int, tip: Tip) -> RoundContext:
        table = self.ledger.stake_table(round)
        return RoundContext(self.params, round, tip.seed, tip.block_hash, table, chain=CHAIN)

    @property
    def empty(self) -> Value:
        """{∅, ∅} of the node's current round."""
        return self.ctx.empty_value

    @property
    def ctx(self) -> RoundContext:
        assert self.node.round is not None
        return self.node.round.ctx

    # --- driving the node -----

    def _collect(self, actions: list[Action]) -> None:
        """Keep the actions; a `Commit` (always the last) is answered `Committed` at once,
        as `echorand.core.executor` answers it."""
        for action in actions:
            if isinstance(action, SetTimer):
                self.timers.append(action)
            else:
                self._actions.append(action)
        if actions and isinstance(commit := actions[-1], Commit):
            block = commit.block
            self._collect(self.node.handle(Committed(self.now, block.round, block.hash)))

    def recv(self, *messages: ConsensusMessage) -> None:
        self._collect(self.node.handle(MessagesReceived(self.now, tuple(messages))))

    def validated(self, block_hash: bytes, ok: bool = True) -> None:
        self._collect(self.node.handle(BlockValidated(self.now, block_hash, ok)))

    def block_received(self, block: Block) -> None:
        self._collect(self.node.handle(BlockReceived(self.now, block)))

    def certified(self, *blocks: tuple[Block, Certificate]) -> None:
        self._collect(self.node.handle(CertifiedBlocksReceived(self.now, tuple(blocks))))

    def add_time(self, ms: int) -> None:
        """Advance the clock, firing due timers in order."""
        end = self.now + ms
        while True:
            due = sorted((t for t in self.timers if t.at_ms <= end), key=lambda t: t.at_ms)
            if not due:
                break
            timer = due[0]
            self.timers.remove(timer)
            self.now = timer.at_ms
            event = TimerFired(timer.at_ms, timer.round, timer.step, timer.kind)
            self._collect(self.node.handle(event))
        self.now = end

    def take(self) -> list[Action]:
        """Every action (timers aside) since the last call."""
        out, self._actions = self._actions, []
        return out

    def assert_state(self, round: int, step: int) -> None:
        assert self.node.round is not None
        assert (self.node.current_round, self.node.round.step) == (round, step)

    # --- messages of other accounts -----

    def remote(self, step: int) -> dict[int, int]:
        """Seats of the accounts other than the node's in A_step."""
        return {a: w for a, w in self.ctx.weights(step).items() if a not in self.keys}

    def signers(self, step: int, weight: int) -> list[int]:
        """Remote accounts of A_step whose seats add up to exactly `weight`."""
        remote = sorted(self.remote(step).items())
        for size in range(1, len(remote) + 1):
            for combo in combinations(remote, size):
                if sum(w for _, w in combo) == weight:
                    return [a for a, _ in combo]
        raise AssertionError(f"no remote accounts of step {step} with weight {weight}")

    def best_remote_producer(self) -> int:
        producers = [a for a in range(N_ACCOUNTS) if a not in self.keys]
        ranked = [(self.ctx.priority(a), a) for a in producers if self.ctx.priority(a) is not None]
        return min(ranked)[1]  # type: ignore[type-var]

    def block(
        self, producer: int, transactions: tuple = (), prev_cert: Certificate | str | None = "own"
    ) -> Block:
        """A block of the current round by `producer`, carrying the CERT_{r-1} this node holds
        (or `prev_cert`, when given: None for none)."""
        ctx = self.ctx
        carried = ctx.carried if prev_cert == "own" else prev_cert
        assert not isinstance(carried, str)
        return sign_block(
            key(producer),
            CHAIN,
            ctx.round,
            ctx.prev_hash,
            producer,
            ctx.seed,
            transactions,
            carried,
            seed_mode=self.params.seed_mode,
        )

    def gc_block(self, block: Block):
        return sign_gc_block(key(block.producer), CHAIN, block.producer, block)

    def gc_signature(self, block: Block):
        return sign_gc_signature(key(block.producer), CHAIN, block.producer, block)

    def proposals(self, step: int, value: Value, signers: list[int]) -> list[ConsensusMessage]:
        return [sign_proposal(key(a), CHAIN, self.ctx.round, step, a, value) for a in signers]

    def votes(self, step: int, b: int, value: Value, signers: list[int]) -> list[ConsensusMessage]:
        return [sign_vote(key(a), CHAIN, self.ctx.round, step, a, b, value) for a in signers]

    # --- what the node should send -----

    def my_proposals(self, step: int, value: Value) -> list[Send]:
        return [
            Send(sign_proposal(self.keys[a], CHAIN, self.ctx.round, step, a, value))
            for a in sorted(self.keys)
            if self.ctx.weight(step, a)
        ]

    def my_votes(self, step: int, b: int, value: Value) -> list[Send]:
        return [
            Send(sign_vote(self.keys[a], CHAIN, self.ctx.round, step, a, b, value))
            for a in sorted(self.keys)
            if self.ctx.weight(step, a)
        ]

    def my_finals(self, block_hash: bytes) -> list[Send]:
        """The final votes the node's accounts send for `block_hash` (PROTOCOL §6)."""
        ctx = self.ctx
        return [
            Send(sign_final(self.keys[a], CHAIN, ctx.round, a, block_hash))
            for a in sorted(self.keys)
            if ctx.weight(FINAL_STEP, a)
        ]

    def my_weight(self, step: int) -> int:
        return sum(self.ctx.weight(step, a) for a in self.keys)


__all__ = ["CHAIN", "EMPTY_VALUE", "LOCAL", "PARAMS", "Sandbox", "key"]


def decided(b: int = 0) -> tuple[Sandbox, Block, Certificate, RoundContext]:
    """A sandbox that decided round 1 (the proposed block of its best remote producer for
    b = 0, the empty block for b = 1), with that block, its certificate and round 1's context
    (also kept as `sb.round1`)."""
    sb = Sandbox()
    sb.take()
    ctx = sb.ctx
    if b == 0:
        block = sb.block(sb.best_remote_producer())
        sb.recv(sb.gc_block(block))
        msgs = sb.votes(4, 0, (block.hash, block.producer), sb.signers(4, PARAMS.t_h + 1))
    else:
        block = Block.empty(1, ctx.prev_hash)
        msgs = sb.votes(5, 1, EMPTY_VALUE, sb.signers(5, PARAMS.t_h + 1))
    sb.recv(*msgs)
    commit = next(a for a in sb.take() if isinstance(a, Commit))
    assert commit.block == block
    sb.round1 = ctx  # type: ignore[attr-defined]
    return sb, block, commit.certificate, ctx
