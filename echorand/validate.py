"""Message validation as the whitepaper lists it, and the gossip relay rule.

Every consensus message of the current round is checked for its step,
its sender's seats in `A_step`, and the fields the whitepaper names; the
signatures of all messages that pass are then verified together, in one
call to the verifier (`verify_batch`, ZIP 215). A message is accepted only
if every signature in it verifies:

- `gc_block`: step 1, sender in A_1, the block of this round by the sender,
  on our H(B_{r-1}), carrying CERT_{r-1} exactly when B_{r-1} is a proposed
  block (docs/protocol.md §16, checked against round r-1's sortition); its
  seed signature over Q[r-1], its block signature, the message signature and
  the carried certificate's signatures.
- `gc_signature`: step 1, sender in A_1, a non-empty block hash, our
  H(B_{r-1}); `rand` verifies as the sender's seed signature over Q[r-1];
  the message signature.
- `gc_proposal`: step 2 or 3, sender in A_step; a non-empty value names a
  producer in A_1; the message signature.
- `bba_signature`: step 4 or later (within a window ahead), sender in
  A_step; a non-empty value names a producer in A_1; `cert_sig` over
  (r, b, v) and the message signature.

Whether a value conflicts with a producer's block hash heard earlier, and
whether a sender already voted in a step, is decided by the round
(`echorand.round`) when it counts the message.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from echorand import crypto
from echorand.certificate import (
    CertificateError,
    PublicKeys,
    SignatureCheck,
    block_checks,
)
from echorand.delegation import Substitute
from echorand.finality import final_vote_checks
from echorand.messages import (
    FINAL_STEP,
    BbaSignature,
    BbaSubstitute,
    ConsensusMessage,
    FinalVote,
    GcBlock,
    GcProposal,
    GcSignature,
    GcSubstitute,
)
from echorand.round import RoundContext
from echorand.seeds import seed_signing_bytes
from echorand.tally import Value, is_empty

STEP_AHEAD = "step ahead"
"""A `bba_signature` of a step beyond the window the node counts (`max_step`): evidence for
the step catch-up (`echorand.consensus`), not counted."""

__all__ = [
    "STEP_AHEAD",
    "CachingVerifier",
    "NativeVerifier",
    "PublicKeys",
    "SignatureCheck",
    "Verdict",
    "Verifier",
    "check_fields",
    "check_substitute",
    "should_relay",
    "value_problem",
    "verify_messages",
]


class Verifier(Protocol):
    """Verifies signatures in batches (one native call for many)."""

    def verify_batch(
        self, public_keys: Sequence[bytes], messages: Sequence[bytes], signatures: Sequence[bytes]
    ) -> list[bool]: ...


class NativeVerifier:
    """The native ZIP 215 verifier (`echorand.crypto.verify_batch`)."""

    def verify_batch(
        self, public_keys: Sequence[bytes], messages: Sequence[bytes], signatures: Sequence[bytes]
    ) -> list[bool]:
        if not public_keys:
            return []
        return crypto.verify_batch(public_keys, messages, signatures)


class CachingVerifier:
    """A verifier that remembers every answer; verification is deterministic, so the
    answers can be shared (the simulator's nodes share one)."""

    def __init__(self, inner: Verifier) -> None:
        self.inner = inner
        self.cache: dict[SignatureCheck, bool] = {}
        self.hits = 0
        self.misses = 0

    def verify_batch(
        self, public_keys: Sequence[bytes], messages: Sequence[bytes], signatures: Sequence[bytes]
    ) -> list[bool]:
        triples = list(zip(public_keys, messages, signatures, strict=True))
        todo = sorted({t for t in triples if t not in self.cache})
        self.hits += len(triples) - len(todo)
        self.misses += len(todo)
        if todo:
            answers = self.inner.verify_batch(*map(list, zip(*todo, strict=True)))
            self.cache.update(zip(todo, answers, strict=True))
        return [self.cache[t] for t in triples]


@dataclass(frozen=True, slots=True)
class Verdict:
    """The result of checking one message: accepted, or the reason it was dropped."""

    message: ConsensusMessage | Substitute
    reason: str | None

    @property
    def ok(self) -> bool:
        return self.reason is None


def check_substitute(
    msg: Substitute, ctx: RoundContext, public_key: PublicKeys, max_step: int
) -> str | list[SignatureCheck]:
    """A substitute (docs/protocol.md §16): its step, the principal's seats, the signer's
    right to speak there in its mode, the value; then its signatures."""
    if msg.round != ctx.round:
        return "wrong round"
    if isinstance(msg, GcSubstitute):
        if msg.step not in (2, 3):
            return "wrong step"
    elif not 4 <= msg.step <= max_step:
        return "wrong step"
    if ctx.weight(msg.step, msg.principal) == 0:
        return "not in committee"
    if not ctx.may_substitute(msg.step, msg.principal, msg.sender, msg.mode):
        return "not a substitute"
    pk = public_key(msg.sender)
    if pk is None:
        return "unknown account"
    problem = value_problem(msg.value, ctx)
    if problem is not None:
        return problem
    checks = [(pk, msg.signing_bytes(ctx.chain), msg.signature)]
    if isinstance(msg, BbaSubstitute):
        checks.append((pk, msg.cert_signing_bytes(ctx.chain), msg.cert_sig))
    return checks


def value_problem(value: Value, ctx: RoundContext) -> str | None:
    """Why a vote's value cannot be of this round, or None: an empty value must be the
    round's `(H(B_ε), 2^64 - 1)` on our H(B_{r-1}) (a vote for the empty block of another
    fork, PROTOCOL §5), and a block's value must name a producer in A_1."""
    if is_empty(value):
        return None if value == ctx.empty_value else "wrong empty value"
    return None if ctx.priority(value[1]) is not None else "leader not a producer"


def check_fields(
    msg: ConsensusMessage | Substitute, ctx: RoundContext, public_key: PublicKeys, max_step: int
) -> str | list[SignatureCheck]:
    """The whitepaper's checks that need no signature: a reason to drop, or the
    signatures the message still has to pass."""
    if isinstance(msg, GcSubstitute | BbaSubstitute):
        return check_substitute(msg, ctx, public_key, max_step)
    if isinstance(msg, FinalVote):
        return final_vote_checks(msg, ctx, public_key)
    if msg.round != ctx.round:
        return "wrong round"
    if isinstance(msg, GcBlock | GcSignature):
        if msg.step != 1:
            return "wrong step"
        prev = msg.block.prev_hash if isinstance(msg, GcBlock) else msg.prev_hash
        if prev != ctx.prev_hash:
            return "wrong previous block"  # before the committee: another chain's sortition
    elif isinstance(msg, GcProposal):
        if msg.step not in (2, 3):
            return "wrong step"
    elif not 4 <= msg.step < FINAL_STEP:
        return "wrong step"
    elif msg.step > max_step:
        return STEP_AHEAD
    if ctx.weight(msg.step, msg.sender) == 0:
        return "not in committee"
    pk = public_key(msg.sender)
    if pk is None:
        return "unknown account"
    checks = [(pk, msg.signing_bytes(ctx.chain), msg.signature)]
    if isinstance(msg, GcBlock):
        return _check_block(msg, ctx, public_key, pk, checks)
    if isinstance(msg, GcSignature):
        if msg.block_hash == ctx.empty_value[0]:
            return "empty block hash"
        if msg.prev_hash != ctx.prev_hash:
            return "wrong previous block"
        checks.append((pk, seed_signing_bytes(ctx.chain, ctx.seed, ctx.round), msg.rand))
        return checks
    problem = value_problem(msg.value, ctx)
    if problem is not None:
        return problem
    if isinstance(msg, BbaSignature):
        checks.append((pk, msg.cert_signing_bytes(ctx.chain), msg.cert_sig))
    return checks


def _check_block(
    msg: GcBlock,
    ctx: RoundContext,
    public_key: PublicKeys,
    pk: bytes,
    checks: list[SignatureCheck],
) -> str | list[SignatureCheck]:
    block = msg.block
    if block.is_empty:
        return "empty block proposed"
    if block.round != ctx.round:
        return "block of wrong round"
    if block.producer != msg.sender:
        return "block of another producer"
    if block.prev_hash != ctx.prev_hash:
        return "wrong previous block"
    try:
        checks.extend(block_checks(block, ctx, public_key))
    except CertificateError:
        return "bad carried certificate"
    return checks


def verify_messages(
    messages: Sequence[ConsensusMessage | Substitute],
    ctx: RoundContext,
    public_key: PublicKeys,
    verifier: Verifier,
    max_step: int,
) -> list[Verdict]:
    """Check every message, verifying all their signatures in one batch; verdicts in order."""
    verdicts: list[Verdict | None] = []
    pending: list[tuple[int, int, int]] = []  # (index, first check, check count)
    batch: list[SignatureCheck] = []
    for index, msg in enumerate(messages):
        checked = check_fields(msg, ctx, public_key, max_step)
        if isinstance(checked, str):
            verdicts.append(Verdict(msg, checked))
            continue
        verdicts.append(None)
        pending.append((index, len(batch), len(checked)))
        batch.extend(checked)
    if batch:
        keys, payloads, sigs = (list(column) for column in zip(*batch, strict=True))
        answers = verifier.verify_batch(keys, payloads, sigs)
        for index, first, count in pending:
            good = all(answers[first : first + count])
            verdicts[index] = Verdict(messages[index], None if good else "bad signature")
    return [v for v in verdicts if v is not None]


def should_relay(
    msg: ConsensusMessage | Substitute,
    *,
    counted: bool,
    priority: int | None,
    best_before: int | None,
) -> bool:
    """The gossip rule (whitepaper, "Messages Distribution via Gossip").

    `counted`: the message verified and is the first from its sender in its
    step (a repeat, an equivocation or a conflicting block hash is not).
    A `gc_block` or `gc_signature` is forwarded if it is the first of its
    kind this round, or if its producer's `priority` is better (lower) than
    `best_before`, the best among those of its kind received before.
    Every other message is forwarded once, after it verifies.
    """
    if not counted:
        return False
    if isinstance(msg, GcBlock | GcSignature):
        return best_before is None or (priority is not None and priority < best_before)
    return True
