"""The fork choice, carried out: one driver for the node and the simulator (PROTOCOL §6,
docs/protocol.md §10).

A peer's certified chain, from the first round we could roll back, goes through
`echorand.protocol.forks.plan`; `ForkChoice` then does what the plan says through a
`ChainHost` (the node's on its LMDB ledger, `echorand.node.chains`; the simulator's on
`SimNode.chain`, `echorand.sim.node`):

- their chain does not attach to ours above our last final block: keep ours (its owner is
  the one to switch);
- two final blocks on chains that part: halt;
- theirs wins: stop consensus, roll back to the fork point, apply their blocks, each
  certificate checked in its round's context, record the fork evidence, check the final
  proof that chose their chain in its round's context there; if anything fails, restore
  ours (a peer whose final proof failed is charged); the removed blocks go back to the
  host (their transactions to the mempool); consensus restarts on the new tip;
- ours wins: their block of the fork round is checked in that round's context on our chain
  (the chains share everything before it): fork evidence, and a halt if our block there is
  final; else keep ours.

Whenever ours stays, a round that decided the other chain's block (it can never commit it)
restarts on our tip. Nothing a peer sends is believed before its certificates pass: an
unchecked chain halts nothing and records no evidence.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from typing import Generic, Protocol, TypeVar

from echorand.core.events import ForkEvidence
from echorand.protocol.certificate import CertificateError, check_certificate
from echorand.protocol.committee import RoundContext
from echorand.protocol.finality import (
    FinalCertificate,
    FinalityError,
    check_final_certificate,
    signatures_hold,
)
from echorand.protocol.forks import CertifiedBlock, ChainView, Choice, ForkError, ForkPlan, plan
from echorand.wire.crypto import Verifier
from echorand.wire.messages import Block, Certificate, FinalProof, GcBlock, GcSignature

P = TypeVar("P")
"""How a host names the peer a chain came from."""
P_contra = TypeVar("P_contra", contravariant=True)


class OutOfReach(LookupError):
    """The host cannot make the context of that round (its stake history does not reach it)."""


class Chain(ChainView, Protocol):
    """Our chain, as the fork choice reads it."""

    @property
    def rollback_floor(self) -> int:
        """The earliest round a rollback can go back to (at least the last final block)."""
        ...

    def final_certificate(self, round: int) -> FinalCertificate | None:
        """The proof that our block of `round` is final, if we hold one for that round."""
        ...


class ChainHost(Protocol[P_contra]):
    """What the fork choice asks of a node: its chain and round contexts, its consensus,
    and where evidence, halts and penalties go."""

    @property
    def chain(self) -> Chain: ...

    @property
    def halted(self) -> str | None:
        """Why consensus stopped for good, if it did."""
        ...

    @property
    def decided_elsewhere(self) -> bool:
        """Whether the running round decided a block that does not extend our tip."""
        ...

    @property
    def genesis_hash(self) -> bytes: ...

    @property
    def verifier(self) -> Verifier: ...

    def public_key(self, account: int) -> bytes | None: ...

    def round_context(self, round: int) -> RoundContext:
        """The context of `round` (at most tip + 1) on our chain as it is now; `OutOfReach`
        when the host's stake history does not reach back to it."""
        ...

    def stop_consensus(self) -> None:
        """No core runs until `restart_consensus` (its timers and answers find nothing)."""
        ...

    def restart_consensus(self) -> None:
        """A new core on our tip, if consensus runs or is to run (it re-sends what it signed
        and signs nothing new in the slots it filled: the signed log)."""
        ...

    def rollback(self, to: int) -> list[Block]:
        """Remove our blocks after round `to` (never past `chain.rollback_floor`); the
        removed blocks, oldest first."""
        ...

    def commit(self, block: Block, certificate: Certificate) -> None:
        """Append a block whose certificate passed on our tip."""
        ...

    def record_final(self, certificate: FinalCertificate) -> None:
        """Keep a checked final certificate of a block we hold: its round is final here."""
        ...

    def rolled_back(self, blocks: Sequence[Block]) -> None:
        """The blocks a switch removed (their transactions may apply on the new chain)."""
        ...

    def fork_evidence(self, evidence: ForkEvidence) -> None: ...

    def halt(self, reason: str) -> None: ...

    def penalize(self, peer: P_contra, why: str) -> None:
        """Charge `peer` for a final proof that did not hold."""
        ...


class ForkChoice(Generic[P]):
    """The fork choice against a peer's chain, and certified blocks applied on our tip,
    through `host`. `stats` counts `rollbacks`, `rolled_back_blocks`, `unsticks` and
    `refused_chains`; `log` is the host's."""

    def __init__(self, host: ChainHost[P], stats: Counter[str], log: logging.Logger) -> None:
        self.host = host
        self.stats = stats
        self.log = log

    def another_chain(self, msg: object) -> bool:
        """A producer's message of a round we could still roll back to, built on another
        H(B_{r-1}) than ours: its sender holds another chain (compare, and let the fork
        choice decide)."""
        if isinstance(msg, GcBlock):
            prev = msg.block.prev_hash
        elif isinstance(msg, GcSignature):
            prev = msg.prev_hash
        else:
            return False
        chain = self.host.chain
        if not chain.rollback_floor < msg.round <= chain.tip + 1:
            return False
        return prev != chain.hash(msg.round - 1)

    def on_fork(
        self, peer: P, blocks: Sequence[CertifiedBlock], proof: FinalProof | None = None
    ) -> bool:
        """A peer's certified chain, from the first round we could roll back: the fork
        choice against ours. True when we follow that chain afterwards. `proof`: the peer's
        last final block, which wins the fork choice once it passes on their chain."""
        host, chain = self.host, self.host.chain
        if host.halted is not None:
            return False
        try:
            fork = plan(chain, blocks)
            final = self._their_final(peer, proof, blocks)
            if fork is not None and final is not None and self._takes(fork, final):
                fork = plan(chain, blocks, final.round)
        except ForkError as e:
            # It parts from ours at or below our floor: that chain can never reach our final
            # round (or the peer lies). Its owner is the one to switch; we keep ours.
            self.stats["refused_chains"] += 1
            self.log.warning(
                "a chain from %s does not attach to ours above our last final block %d: %s;"
                " kept ours",
                peer,
                chain.final_round,
                e,
            )
            self.unstick()
            return False
        if fork is None:
            return True
        if fork.choice is Choice.HALT:
            host.halt(f"round {fork.fork_round}: two final blocks on chains that part there")
            return False
        if fork.choice is Choice.THEIRS and fork.rollback_to >= chain.rollback_floor:
            proven = final if final is not None and final.round >= fork.fork_round else None
            return self._switch(fork, proven, peer)
        return self._keep(fork, peer)

    def _takes(self, fork: ForkPlan, final: FinalCertificate) -> bool:
        """Whether their final block counts in the fork choice: after the fork point and
        after our last final block (then judged on their chain, `_switch`), or at the fork
        point at or below our last final block, where the context of its round is ours
        (the chains share everything before it): checked now, it makes two final blocks."""
        final_round = self.host.chain.final_round
        if final.round >= fork.fork_round > final_round:
            return True
        return final.round == fork.fork_round <= final_round and self._holds(final)

    def _keep(self, fork: ForkPlan, peer: P) -> bool:
        """Ours stays: their certificate of the fork round, checked, is fork evidence, and a
        halt if our block of that round is final."""
        if self._checked_fork_round(fork):
            final = self.host.chain.final_certificate(fork.fork_round)
            if final is not None:
                theirs_hash = fork.theirs[0][0].hash.hex()[:16]
                self.host.halt(
                    f"round {fork.fork_round}: a peer's valid certificate for block"
                    f" {theirs_hash}.. conflicts with our final block"
                    f" {final.block_hash.hex()[:16]}.."
                )
                return False
        if fork.below_final:
            why = "it parts below our last final block"
        elif fork.choice is Choice.THEIRS:
            why = "it parts below the rounds we can roll back"
        else:
            why = "our chain wins the fork choice"
        self.log.warning("fork at round %d with %s: %s; kept", fork.fork_round, peer, why)
        self.unstick()
        return False

    def _checked_fork_round(self, fork: ForkPlan) -> bool:
        """Whether their block of the fork round passes its certificate in that round's
        context on our chain (the chains share everything before it); if so, both
        certificates are recorded as fork evidence."""
        host = self.host
        block, theirs = fork.theirs[0]
        try:
            ctx = host.round_context(fork.fork_round)
            check_certificate(theirs, block, ctx, host.public_key, host.verifier)
        except (CertificateError, OutOfReach) as e:
            self.log.warning(
                "fork at round %d: their certificate is not checked: %s", fork.fork_round, e
            )
            return False
        _, ours = fork.ours[0]
        host.fork_evidence(ForkEvidence(fork.fork_round, ours, theirs, block))
        return True

    def unstick(self) -> None:
        """Our chain stays: a round that decided the other chain's block can never commit it,
        so consensus starts again on our tip."""
        if self.host.decided_elsewhere:
            self.stats["unsticks"] += 1
            self.log.warning(
                "round %d decided a block of the other chain: restarting it",
                self.host.chain.tip + 1,
            )
            self.host.restart_consensus()

    def _their_final(
        self, peer: P, proof: FinalProof | None, blocks: Sequence[CertifiedBlock]
    ) -> FinalCertificate | None:
        """The final certificate of `proof` when it is for one of `blocks` and its
        signatures hold (they need no committee, so no chain: checked before anything is
        rolled back). Its weight in the final committee is checked in its round's context.
        A forged one costs the peer a penalty."""
        if proof is None or not blocks:
            return None
        at = proof.round - blocks[0][0].round
        if not 0 <= at < len(blocks) or blocks[at][0].hash != proof.block_hash:
            return None
        try:
            final = FinalCertificate.from_proof(proof)
        except ValueError:
            return None
        host = self.host
        verify = host.verifier.verify_batch
        if not signatures_hold(final, host.genesis_hash, host.public_key, verify):
            host.penalize(peer, f"final proof {final.round}: bad signature")
            return None
        return final

    def _holds(self, final: FinalCertificate) -> bool:
        """Whether `final` proves its block final in its round's context on our chain."""
        host = self.host
        try:
            ctx = host.round_context(final.round)
            check_final_certificate(final, ctx, host.public_key, host.verifier.verify_batch)
        except (FinalityError, OutOfReach) as e:
            self.log.warning("fork: the final proof of round %d is refused: %s", final.round, e)
            return False
        return True

    def _proven_final(self, final: FinalCertificate) -> bool:
        """Whether `final` proves our block of its round final on the chain we switched to;
        if so it is kept, and its round is final here too."""
        chain = self.host.chain
        if chain.hash(final.round) != final.block_hash or not self._holds(final):
            return False
        if final.round > chain.final_round:
            self.host.record_final(final)
        self.log.info("fork: round %d is final on the chain we switched to", final.round)
        return True

    def _switch(self, fork: ForkPlan, final: FinalCertificate | None, peer: P) -> bool:
        """Roll back to the fork point and apply the other chain, each block checked as sync
        checks it, and `final` (the proof that chose it, if the fork choice went by one) in
        its round's context on that chain; if one fails, restore ours. Consensus restarts on
        the new tip (it abstains in the slots it filled on the old chain)."""
        host = self.host
        host.stop_consensus()
        removed = host.rollback(fork.rollback_to)
        self.stats["rollbacks"] += 1
        self.stats["rolled_back_blocks"] += len(removed)
        applied = self.apply_certified(fork.theirs)
        if applied:  # their block of the fork round passed its certificate: evidence
            (_, ours), (theirs_block, theirs) = fork.ours[0], fork.theirs[0]
            host.fork_evidence(ForkEvidence(fork.fork_round, ours, theirs, theirs_block))
        if applied == len(fork.theirs) and final is not None and not self._proven_final(final):
            applied = -1
            host.penalize(peer, f"final proof {final.round}: not final on that chain")
        if applied < len(fork.theirs):
            self.log.error(
                "fork at round %d: the other chain failed its checks; ours restored",
                fork.fork_round,
            )
            host.rollback(fork.rollback_to)
            self.apply_certified(fork.ours)
        else:
            self.log.warning(
                "fork at round %d: switched to the chain the fork choice prefers (%d blocks"
                " rolled back, %d applied), now at round %d",
                fork.fork_round,
                len(removed),
                applied,
                host.chain.tip,
            )
        host.rolled_back(removed)
        host.restart_consensus()
        return applied == len(fork.theirs)

    def apply_certified(self, blocks: Sequence[CertifiedBlock], source: str = "fork") -> int:
        """Apply consecutive certified blocks on our tip, each certificate checked against
        its round's committee (`source` names where they came from, in the log); how many
        were applied before one failed."""
        host, chain = self.host, self.host.chain
        for n, (block, cert) in enumerate(blocks):
            if block.round != chain.tip + 1 or block.prev_hash != chain.hash(chain.tip):
                return n
            try:
                ctx = host.round_context(block.round)
                check_certificate(cert, block, ctx, host.public_key, host.verifier)
            except (CertificateError, OutOfReach) as e:
                self.log.warning(
                    "%s: the certificate of round %d is refused: %s", source, block.round, e
                )
                return n
            host.commit(block, cert)
        return len(blocks)
