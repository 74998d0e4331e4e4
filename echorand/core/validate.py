"""Message validation as the whitepaper lists it, and the gossip relay rule.

Every consensus message of the current round is checked for its step,
its sender's seats in `A_step`, and the fields the whitepaper names; the
signatures of all messages that pass are then verified together, in one
call to the verifier (`verify_batch`, ZIP 215). A message is accepted only
if every signature in it verifies:

- `gc_block`: step 1, sender in A_1, the block of this round by the sender,
  on our H(B_{r-1}), carrying CERT_{r-1} exactly when B_{r-1} is a proposed
  block (docs/protocol.md §16, checked against round r-1's sortition); its
  seed credential over Q[r-1] (a signature, or a VRF proof checked at once),
  its block signature, the message signature and the carried certificate's
  signatures.
- `gc_signature`: step 1, sender in A_1, a non-empty block hash, our
  H(B_{r-1}); `rand` verifies as the sender's seed signature over Q[r-1] (under a
  `vrf` genesis no gc_signature is valid: a block's VRF proof travels in its gc_block);
  the message signature.
- `gc_proposal`: step 2 or 3, sender in A_step; a non-empty value names a
  producer in A_1; the message signature.
- `bba_signature`: step 4 or later (within a window ahead), sender in
  A_step; a non-empty value names a producer in A_1; `cert_sig` over
  (r, b, v) and the message signature.

Whether a value conflicts with a producer's block hash heard earlier, and
whether a sender already voted in a step, is decided by the round
(`echorand.core.round`) when it counts the message.

Cheap checks first: every check that needs no signature runs before any
signature is verified, and the signatures in two stages: a message's own
(for a `gc_block`: its message, seed and block signatures) for the whole
batch, then the votes of the carried certificates of the blocks that passed,
each distinct certificate once. A `gc_block` with a copied certificate and a
forged signature thus costs three verifications, not `N_c + 3`.

Every drop has a `DropReason` (go-algorand's "filtered" or "malformed"
verdicts): benign when an honest peer may send the message (stale,
duplicate, late, of another fork), malicious when no honest peer ever does;
the malicious ones cost the peer that sent them (docs/protocol.md §12,
"Peer scores and bans").
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum, StrEnum

from echorand.protocol.certificate import (
    CertificateError,
    PublicKeys,
    SeedProofError,
    SignatureCheck,
    block_checks,
    carried_checks,
)
from echorand.protocol.committee import RoundContext
from echorand.protocol.delegation import Substitute
from echorand.protocol.finality import final_vote_checks
from echorand.protocol.seeds import VRF, seed_signing_bytes
from echorand.protocol.tally import Value, is_empty
from echorand.wire.crypto import NativeVerifier, Verifier
from echorand.wire.messages import (
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

__all__ = [
    "ACCEPTED",
    "BAN_SCORE",
    "CachingVerifier",
    "Checks",
    "DropReason",
    "Harm",
    "NativeVerifier",
    "PublicKeys",
    "SignatureCheck",
    "Verdict",
    "Verifier",
    "check_fields",
    "check_substitute",
    "should_relay",
    "signature_stages",
    "value_problem",
    "verify_messages",
]


class Harm(Enum):
    """Who can have sent a dropped message."""

    BENIGN = "benign"
    """An honest peer may: stale, duplicate, late, early, or judged on another fork."""
    MALICIOUS = "malicious"
    """No honest peer ever does: it is forged, malformed or impossible."""


class DropReason(StrEnum):
    """Why a message, a transaction or a connection was dropped: the value is its name in
    the logs and metrics (and the consensus core's `stats` key), `harm` says whether an
    honest peer can be the cause, `penalty` what it costs the peer's score (§12)."""

    # -- consensus verdicts (the core's stats)
    DUPLICATE = "duplicate"
    """A message seen before, or a second connection to a node already connected."""
    OLD_ROUND = "old round"
    FUTURE_ROUND = "future round"
    BUFFER_FULL = "buffer full"
    REPEAT_OR_CONFLICT = "repeat or conflict"
    UNEXPECTED_BLOCK = "unexpected block"
    WRONG_ROUND = "wrong round"
    WRONG_STEP = "wrong step"
    STEP_AHEAD = "step ahead"
    """A `bba_signature` of a step beyond the window the node counts (μ ahead of ours): an
    honest peer may be that far; kept as evidence for the step catch-up
    (`echorand.core.consensus`), not counted."""
    WRONG_PREVIOUS_BLOCK = "wrong previous block"
    WRONG_EMPTY_VALUE = "wrong empty value"
    EMPTY_BLOCK_HASH = "empty block hash"
    NOT_IN_COMMITTEE = "not in committee"
    """A vote's sender without seats in our committee of that step: judged on our chain (an
    honest node on another fork, with other committees, sends such votes)."""
    NOT_A_PRODUCER = "not a producer"
    """A step-1 message on our H(B_{r-1}) from an account not in our A_1: the same chain
    gives everyone the same A_1, so no honest peer sends it."""
    NOT_A_SUBSTITUTE = "not a substitute"
    UNKNOWN_ACCOUNT = "unknown account"
    LEADER_NOT_A_PRODUCER = "leader not a producer"
    EMPTY_BLOCK_PROPOSED = "empty block proposed"
    BLOCK_OF_WRONG_ROUND = "block of wrong round"
    BLOCK_OF_ANOTHER_PRODUCER = "block of another producer"
    BAD_CARRIED_CERTIFICATE = "bad carried certificate"
    BAD_SIGNATURE = "bad signature"
    """A consensus message's (honest peers relay only what verified, but a seed signature
    is judged on the chain: a node on a short-lived fork may disagree)."""
    BAD_SEED_PROOF = "bad seed proof"
    """A block's seed credential that is not of the genesis's kind or a VRF proof that does
    not verify (judged on the chain, like a seed signature); a gc_signature under a `vrf`
    genesis (its `rand` holds a signature, not a proof)."""
    BAD_TRANSACTION = "bad transaction signature"
    """A gossiped transaction's: honest peers relay only what their mempool admitted, and a
    transaction's signature is judged alike on every chain."""
    BAD_CERTIFICATE = "bad certificate"
    # -- connections (echorand.net.peer, echorand.net.network)
    BAD_HELLO = "bad_hello"
    BAD_PROOF = "bad_proof"
    WRONG_KEY = "wrong_key"
    WRONG_VERSION = "wrong_version"
    WRONG_GENESIS = "wrong_genesis"
    SELF = "self"
    HELLO_TIMEOUT = "hello_timeout"
    IDLE = "idle"
    BAD_FRAME = "bad_frame"
    BAD_MESSAGE = "bad_message"
    PEER_LIMIT = "peer_limit"
    ADDRESS_LIMIT = "address_limit"
    BANNED = "banned"
    TOO_SLOW = "too_slow"
    SHUTDOWN = "shutdown"
    CLOSED = "closed"
    """By the other side."""
    # -- sync (echorand.net.sync)
    UNSOLICITED_SYNC = "unsolicited_sync"
    BAD_SYNC_RESPONSE = "bad_sync_response"
    SYNC_BAD_CERTIFICATE = "bad_certificate"
    FALSE_TIP = "false_tip"
    SYNC_TIMEOUT = "sync_timeout"
    SYNC_FLOOD = "sync_flood"

    @property
    def harm(self) -> Harm:
        return Harm.MALICIOUS if self.penalty else Harm.BENIGN

    @property
    def malicious(self) -> bool:
        return self.penalty > 0

    @property
    def penalty(self) -> int:
        """Points added to the sending address's score (a ban at BAN_SCORE = 100)."""
        return _PENALTIES.get(self, 0)


BAN_SCORE = 100
"""The score at which a peer's address is disconnected and banned (§12)."""
_PENALTIES: dict[DropReason, int] = {
    # Impossible bytes: no honest implementation of the codec sends them; one is enough.
    DropReason.BAD_HELLO: BAN_SCORE,
    DropReason.BAD_PROOF: BAN_SCORE,
    DropReason.BAD_FRAME: BAN_SCORE,
    DropReason.BAD_MESSAGE: BAN_SCORE,
    DropReason.UNSOLICITED_SYNC: BAN_SCORE,
    DropReason.BAD_SYNC_RESPONSE: BAN_SCORE,
    DropReason.SYNC_BAD_CERTIFICATE: BAN_SCORE,
    DropReason.EMPTY_BLOCK_PROPOSED: BAN_SCORE,
    DropReason.BLOCK_OF_WRONG_ROUND: BAN_SCORE,
    DropReason.BLOCK_OF_ANOTHER_PRODUCER: BAN_SCORE,
    # Forged or out of the committee: honest nodes relay only what verified against the
    # same chain; a few are tolerated (a node on a short-lived fork judges differently).
    DropReason.BAD_TRANSACTION: BAN_SCORE,
    DropReason.BAD_SIGNATURE: 25,
    DropReason.BAD_CARRIED_CERTIFICATE: 25,
    DropReason.BAD_SEED_PROOF: 25,
    DropReason.BAD_CERTIFICATE: 25,
    DropReason.NOT_A_PRODUCER: 25,
    DropReason.NOT_A_SUBSTITUTE: 25,
    DropReason.UNKNOWN_ACCOUNT: 25,
    # Sync: a tip it cannot serve, a request it does not answer, requests faster than any
    # honest client sends them.
    DropReason.FALSE_TIP: 60,
    DropReason.SYNC_TIMEOUT: 60,
    DropReason.SYNC_FLOOD: 10,
}

ACCEPTED = "accepted"
"""The core's `stats` key for a message that verified and was counted."""


class CachingVerifier:
    """A verifier that remembers its answers; verification is deterministic, so the
    answers can be shared (the simulator's nodes share one) and computed ahead, off the
    event loop (the node, `remember`). With `capacity`, the oldest answers are forgotten
    past it (the node's: a bounded memory)."""

    def __init__(self, inner: Verifier, capacity: int | None = None) -> None:
        if capacity is not None and capacity < 1:
            raise ValueError(f"capacity: must be positive, got {capacity}")
        self.inner = inner
        self.capacity = capacity
        self.cache: OrderedDict[SignatureCheck, bool] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __contains__(self, check: object) -> bool:
        return check in self.cache

    def verify_batch(
        self, public_keys: Sequence[bytes], messages: Sequence[bytes], signatures: Sequence[bytes]
    ) -> list[bool]:
        triples = list(zip(public_keys, messages, signatures, strict=True))
        known = {t: self.cache[t] for t in triples if t in self.cache}
        todo = sorted({t for t in triples if t not in known})
        self.hits += len(triples) - len(todo)
        self.misses += len(todo)
        if todo:
            answers = self.inner.verify_batch(*map(list, zip(*todo, strict=True)))
            known.update(zip(todo, answers, strict=True))
            self.remember(todo, answers)
        return [known[t] for t in triples]

    def remember(self, checks: Sequence[SignatureCheck], answers: Sequence[bool]) -> None:
        """Keep answers computed elsewhere (the same verifier, another thread)."""
        self.cache.update(zip(checks, answers, strict=True))
        if self.capacity is not None:
            while len(self.cache) > self.capacity:
                self.cache.popitem(last=False)


@dataclass(frozen=True, slots=True)
class Verdict:
    """The result of checking one message: accepted, or the reason it was dropped."""

    message: ConsensusMessage | Substitute
    reason: DropReason | None

    @property
    def ok(self) -> bool:
        return self.reason is None


@dataclass(frozen=True, slots=True)
class Checks:
    """The signatures a message that passed every other check must pass: its own first,
    then (a `gc_block`) the votes of the certificate its block carries, known by its
    encoding (`carried_key`) so that one certificate is verified once per batch."""

    own: list[SignatureCheck]
    carried: list[SignatureCheck]
    carried_key: bytes | None = None


def check_substitute(
    msg: Substitute, ctx: RoundContext, public_key: PublicKeys, max_step: int
) -> DropReason | list[SignatureCheck]:
    """A substitute (docs/protocol.md §16): its step, the principal's seats, the signer's
    right to speak there in its mode, the value; then its signatures."""
    if msg.round != ctx.round:
        return DropReason.WRONG_ROUND
    if isinstance(msg, GcSubstitute):
        if msg.step not in (2, 3):
            return DropReason.WRONG_STEP
    elif not 4 <= msg.step <= max_step:
        return DropReason.WRONG_STEP
    if ctx.weight(msg.step, msg.principal) == 0:
        return DropReason.NOT_IN_COMMITTEE
    if not ctx.may_substitute(msg.step, msg.principal, msg.sender, msg.mode):
        return DropReason.NOT_A_SUBSTITUTE
    pk = public_key(msg.sender)
    if pk is None:
        return DropReason.UNKNOWN_ACCOUNT
    problem = value_problem(msg.value, ctx)
    if problem is not None:
        return problem
    checks = [(pk, msg.signing_bytes(ctx.chain), msg.signature)]
    if isinstance(msg, BbaSubstitute):
        checks.append((pk, msg.cert_signing_bytes(ctx.chain), msg.cert_sig))
    return checks


def value_problem(value: Value, ctx: RoundContext) -> DropReason | None:
    """Why a vote's value cannot be of this round, or None: an empty value must be the
    round's `(H(B_ε), 2^64 - 1)` on our H(B_{r-1}) (a vote for the empty block of another
    fork, PROTOCOL §5), and a block's value must name a producer in A_1."""
    if is_empty(value):
        return None if value == ctx.empty_value else DropReason.WRONG_EMPTY_VALUE
    return None if ctx.priority(value[1]) is not None else DropReason.LEADER_NOT_A_PRODUCER


def check_fields(
    msg: ConsensusMessage | Substitute, ctx: RoundContext, public_key: PublicKeys, max_step: int
) -> DropReason | Checks:
    """The whitepaper's checks that need no signature: a reason to drop, or the
    signatures the message still has to pass."""
    if isinstance(msg, GcSubstitute | BbaSubstitute):
        checked = check_substitute(msg, ctx, public_key, max_step)
        return checked if isinstance(checked, DropReason) else Checks(checked, [])
    if isinstance(msg, FinalVote):
        final = final_vote_checks(msg, ctx, public_key)
        return DropReason(final) if isinstance(final, str) else Checks(final, [])
    checked = _check_message(msg, ctx, public_key, max_step)
    return checked if isinstance(checked, DropReason | Checks) else Checks(checked, [])


def _check_message(
    msg: ConsensusMessage, ctx: RoundContext, public_key: PublicKeys, max_step: int
) -> DropReason | Checks | list[SignatureCheck]:
    if msg.round != ctx.round:
        return DropReason.WRONG_ROUND
    if isinstance(msg, GcBlock | GcSignature):
        if msg.step != 1:
            return DropReason.WRONG_STEP
        prev = msg.block.prev_hash if isinstance(msg, GcBlock) else msg.prev_hash
        if prev != ctx.prev_hash:
            return DropReason.WRONG_PREVIOUS_BLOCK  # before the committee: another chain's
    elif isinstance(msg, GcProposal):
        if msg.step not in (2, 3):
            return DropReason.WRONG_STEP
    elif not 4 <= msg.step < FINAL_STEP:
        return DropReason.WRONG_STEP
    elif msg.step > max_step:
        return DropReason.STEP_AHEAD
    if ctx.weight(msg.step, msg.sender) == 0:
        if isinstance(msg, GcBlock | GcSignature):
            return DropReason.NOT_A_PRODUCER
        return DropReason.NOT_IN_COMMITTEE
    pk = public_key(msg.sender)
    if pk is None:
        return DropReason.UNKNOWN_ACCOUNT
    checks = [(pk, msg.signing_bytes(ctx.chain), msg.signature)]
    if isinstance(msg, GcBlock):
        return _check_block(msg, ctx, public_key, pk, checks)
    if isinstance(msg, GcSignature):
        if msg.block_hash == ctx.empty_value[0]:
            return DropReason.EMPTY_BLOCK_HASH
        if msg.prev_hash != ctx.prev_hash:
            return DropReason.WRONG_PREVIOUS_BLOCK
        if ctx.params.seed_mode == VRF:
            return DropReason.BAD_SEED_PROOF
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
) -> DropReason | Checks:
    block = msg.block
    if block.is_empty:
        return DropReason.EMPTY_BLOCK_PROPOSED
    if block.round != ctx.round:
        return DropReason.BLOCK_OF_WRONG_ROUND
    if block.producer != msg.sender:
        return DropReason.BLOCK_OF_ANOTHER_PRODUCER
    if block.prev_hash != ctx.prev_hash:
        return DropReason.WRONG_PREVIOUS_BLOCK
    try:
        carried = carried_checks(block, ctx, public_key)
        own = block_checks(block, ctx, public_key, carried=False)
    except SeedProofError:
        return DropReason.BAD_SEED_PROOF
    except CertificateError:
        return DropReason.BAD_CARRIED_CERTIFICATE
    cert = block.prev_cert
    return Checks([*checks, *own], carried, None if cert is None else cert.encode())


def verify_messages(
    messages: Sequence[ConsensusMessage | Substitute],
    ctx: RoundContext,
    public_key: PublicKeys,
    verifier: Verifier,
    max_step: int,
) -> list[Verdict]:
    """Check every message, then verify their signatures in two batches (`signature_stages`);
    verdicts in order."""
    checked = [check_fields(msg, ctx, public_key, max_step) for msg in messages]
    good = signature_stages(checked, verifier)
    verdicts = []
    for msg, c, ok in zip(messages, checked, good, strict=True):
        reason = c if isinstance(c, DropReason) else None if ok else DropReason.BAD_SIGNATURE
        verdicts.append(Verdict(msg, reason))
    return verdicts


def signature_stages(checked: Sequence[DropReason | Checks], verifier: Verifier) -> list[bool]:
    """Whether each message's signatures verify (False for a message already dropped):
    first every message's own signatures in one batch, then the carried certificates of
    those that passed, each distinct certificate once, in a second batch."""
    own = [c.own if isinstance(c, Checks) else [] for c in checked]
    verified = _verify_groups(own, verifier)
    good = [ok and isinstance(c, Checks) for c, ok in zip(checked, verified, strict=True)]
    certs: dict[bytes, list[SignatureCheck]] = {}
    for c, ok in zip(checked, good, strict=True):
        if ok and isinstance(c, Checks) and c.carried_key is not None:
            certs.setdefault(c.carried_key, c.carried)
    if certs:
        verdict = dict(zip(certs, _verify_groups(list(certs.values()), verifier), strict=True))
        for i, c in enumerate(checked):
            if good[i] and isinstance(c, Checks) and c.carried_key is not None:
                good[i] = verdict[c.carried_key]
    return good


def _verify_groups(groups: Sequence[Sequence[SignatureCheck]], verifier: Verifier) -> list[bool]:
    """Whether every signature of each group verifies, all groups in one batch."""
    batch = [check for group in groups for check in group]
    if not batch:
        return [True] * len(groups)
    keys, payloads, sigs = (list(column) for column in zip(*batch, strict=True))
    answers = verifier.verify_batch(keys, payloads, sigs)
    out, first = [], 0
    for group in groups:
        out.append(all(answers[first : first + len(group)]))
        first += len(group)
    return out


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
