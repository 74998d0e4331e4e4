"""Chains: this node's chain against its peers' (PROTOCOL §6, docs/protocol.md §10).

Certified blocks from sync or from a peer's chain are applied only once their certificates
pass against the committee of their round on our chain. A producer's message built on
another H(B_{r-1}) raises a suspicion; the peer's chain then goes through the fork choice
(`echorand.protocol.forks.plan`): keep ours (restarting a round that decided the other chain's
block), switch to theirs (roll back, apply, requeue the removed transactions), or halt on
two final blocks. Fork evidence comes only from checked certificates.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from echorand.core.consensus import tip_context
from echorand.core.events import ForkEvidence
from echorand.core.validate import DropReason
from echorand.ledger.ledger import LedgerError
from echorand.net.sync import CertifiedBlock
from echorand.protocol.certificate import CertificateError, check_certificate
from echorand.protocol.finality import (
    FinalCertificate,
    FinalityError,
    check_final_certificate,
    signatures_hold,
)
from echorand.protocol.forks import Choice, ForkError, ForkPlan
from echorand.protocol.forks import plan as plan_fork
from echorand.wire.messages import FinalProof, GcBlock, GcSignature

if TYPE_CHECKING:
    from echorand.net.peer import Peer
    from echorand.node.node import Node

log = logging.getLogger("echorand.node.node")


class Chains:
    """The fork choice and the application of certified blocks, for `node` (a piece of it:
    it restarts the node's consensus and reads its round contexts)."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.ledger = node.ledger

    def on_another_chain(self, msg: object) -> bool:
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

    def on_fork(
        self, peer: Peer, blocks: list[CertifiedBlock], proof: FinalProof | None = None
    ) -> bool:
        """A peer's certified chain from the first round we could roll back: the fork
        choice against ours. True when we follow that chain afterwards. Nothing the peer
        sent is believed before its certificates pass (`_switch`): keeping ours needs none,
        and fork evidence is recorded only from checked certificates. `proof`: the peer's
        last final block, which wins the fork choice once it passes on their chain."""
        if self.node.halted is not None:
            return False
        try:
            plan = plan_fork(self.ledger, blocks)
            final = self._their_final(peer, proof, blocks)
            if (
                plan is not None
                and final is not None
                and final.round >= plan.fork_round > self.ledger.final_round
            ):
                # their block after the fork is final, if the proof passes (`_switch`)
                plan = plan_fork(self.ledger, blocks, final.round)
        except ForkError as e:
            # It parts from ours at or below our last final block: that chain can never reach
            # the final round (or the peer lies). Its owner is the one to switch; we keep ours.
            log.warning(
                "a chain from %s does not attach to ours above our last final block %d: %s;"
                " kept ours",
                peer,
                self.ledger.final_round,
                e,
            )
            self.unstick()
            return False
        if plan is None:
            return True
        if plan.choice is Choice.HALT:  # needs a final block proved on their chain
            self.node.host.halt(
                f"round {plan.fork_round}: two final blocks on chains that part there"
            )
            return False
        if plan.choice is Choice.THEIRS:
            proven = final if final is not None and final.round >= plan.fork_round else None
            return self._switch(plan, proven, peer)
        if self._checked_fork_round(plan):
            final = self.ledger.final_certificate(plan.fork_round)
            if final is not None:
                theirs_hash = plan.theirs[0][0].hash.hex()[:16]
                self.node.host.halt(
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
        self.unstick()
        return False

    def _checked_fork_round(self, plan: ForkPlan) -> bool:
        """Whether their block of the fork round passes its certificate in that round's
        context on our chain (the chains share everything before it); if so, both
        certificates are recorded as fork evidence. False when that round is past the
        reach of our stake snapshots (`undo_rounds`)."""
        block, theirs = plan.theirs[0]
        try:
            tip = self.node._ledger_tip(plan.fork_round - 1)
            ctx = tip_context(self.node.params, self.node.view, tip)
            check_certificate(theirs, block, ctx, self.node.view.public_key, self.node.verifier)
        except (CertificateError, LedgerError) as e:
            log.warning(
                "fork at round %d: their certificate is not checked: %s", plan.fork_round, e
            )
            return False
        _, ours = plan.ours[0]
        self.node.host.fork_evidence(ForkEvidence(plan.fork_round, ours, theirs, block))
        return True

    def unstick(self) -> None:
        """Our chain stays: a round that decided the other chain's block can never commit it,
        so consensus starts again on our tip (it re-sends what it signed, signs nothing new
        in those slots)."""
        if self.node.core is not None and self.node.core.decided_elsewhere:
            log.warning(
                "round %d decided a block of the other chain: restarting it", self.ledger.tip + 1
            )
            self.node._start_consensus()

    def _their_final(
        self, peer: Peer, proof: FinalProof | None, blocks: Sequence[CertifiedBlock]
    ) -> FinalCertificate | None:
        """The final certificate of `proof` when it is for one of `blocks` and its
        signatures hold (they need no committee, so no chain: checked before anything is
        rolled back). Its weight in the final committee is checked on their chain
        (`_proven_final`). A forged one costs the peer a penalty."""
        if proof is None or not blocks:
            return None
        at = proof.round - blocks[0][0].round
        if not 0 <= at < len(blocks) or blocks[at][0].hash != proof.block_hash:
            return None
        try:
            final = FinalCertificate.from_proof(proof)
        except ValueError:
            return None
        node = self.node
        if not signatures_hold(
            final, node.genesis.hash, node.view.public_key, node.verifier.verify_batch
        ):
            self._penalize(peer, f"final proof {final.round}: bad signature")
            return None
        return final

    def _penalize(self, peer: Peer | None, why: str) -> None:
        net = self.node.net
        if peer is not None and net is not None:
            net.penalize(peer, DropReason.BAD_CERTIFICATE, why)

    def _proven_final(self, final: FinalCertificate) -> bool:
        """Whether `final` proves its block (held now) final in its round's context on our
        chain; if so the ledger keeps it and its round is final here too."""
        node = self.node
        try:
            tip = node._ledger_tip(final.round - 1)
            ctx = tip_context(node.params, node.view, tip)
            check_final_certificate(final, ctx, node.view.public_key, node.verifier.verify_batch)
            if final.round > self.ledger.final_round:
                self.ledger.record_final(final)
        except (FinalityError, LedgerError) as e:
            log.warning("fork: the final proof of round %d is refused: %s", final.round, e)
            return False
        log.info("fork: round %d is final on the chain we switched to", final.round)
        return True

    def _switch(
        self,
        plan: ForkPlan,
        final: FinalCertificate | None = None,
        peer: Peer | None = None,
    ) -> bool:
        """Roll back to the fork point and apply the other chain, each block checked as sync
        checks it, and `final` (the proof that chose it, if the fork choice went by one) in
        its round's context on that chain; if one fails, restore ours. Consensus restarts on
        the new tip (it abstains in the slots it filled on the old chain)."""
        self.node._drive(None)
        removed = self.ledger.rollback(plan.rollback_to)
        self.node.counters["rollbacks"] += 1
        self.node.counters["rolled_back_blocks"] += len(removed)
        applied = self.apply_certified(plan.theirs)
        if applied:  # their block of the fork round passed its certificate: evidence
            (_, ours), (theirs_block, theirs) = plan.ours[0], plan.theirs[0]
            self.node.host.fork_evidence(ForkEvidence(plan.fork_round, ours, theirs, theirs_block))
        if applied == len(plan.theirs) and final is not None and not self._proven_final(final):
            applied = -1
            self._penalize(peer, f"final proof {final.round}: not final on that chain")
        if applied < len(plan.theirs):
            log.error(
                "fork at round %d: the other chain failed its checks; ours restored",
                plan.fork_round,
            )
            self.ledger.rollback(plan.rollback_to)
            self.apply_certified(plan.ours)
        else:
            log.warning(
                "fork at round %d: switched to the chain the fork choice prefers (%d blocks"
                " rolled back, %d applied), now at round %d",
                plan.fork_round,
                len(removed),
                applied,
                self.ledger.tip,
            )
        self.node.admission.rolled_back([tx for block in removed for tx in block.transactions])
        if self.node.caught_up:
            self.node._start_consensus()
        return applied == len(plan.theirs)

    def apply_certified(self, blocks: Sequence[CertifiedBlock], source: str = "fork") -> int:
        """Apply consecutive certified blocks on the tip, each certificate checked against
        its round's committee (`source` names where they came from, in the log); how many
        were applied before one failed."""
        for n, (block, cert) in enumerate(blocks):
            if block.round != self.ledger.tip + 1 or block.prev_hash != self.ledger.tip_hash:
                return n
            ctx = self.node._round_context(block.round)
            try:
                check_certificate(cert, block, ctx, self.node.view.public_key, self.node.verifier)
            except CertificateError as e:
                log.warning(
                    "%s: the certificate of round %d is refused: %s", source, block.round, e
                )
                return n
            self.node.host.commit(block, cert)
        return len(blocks)
