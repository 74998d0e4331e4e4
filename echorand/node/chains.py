"""The node's side of the fork choice (PROTOCOL §6, docs/protocol.md §10): `NodeChains`, the
`echorand.core.forkchoice.ChainHost` on the node's LMDB ledger.

The fork choice itself, and the certified blocks applied on the tip (sync before the node
joins consensus, a peer's chain after a rollback), are `echorand.core.forkchoice.ForkChoice`,
the one driver the simulator runs too. Here: what it reads and does on the node. Round
contexts come from the ledger (`echorand.node.view`), a rollback is one LMDB write
transaction (`Ledger.rollback`), blocks are committed as decided ones are (`NodeHost.commit`),
the removed blocks' transactions go back through admission, and a peer whose final proof
fails is charged on the network.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from echorand.core.consensus import Consensus
from echorand.core.events import ForkEvidence
from echorand.core.forkchoice import OutOfReach
from echorand.core.validate import DropReason
from echorand.ledger.ledger import Ledger, LedgerError
from echorand.node.admission import Admission
from echorand.node.host import NodeHost
from echorand.node.view import LedgerView, round_context
from echorand.protocol.committee import RoundContext
from echorand.protocol.finality import FinalCertificate
from echorand.protocol.params import Params
from echorand.wire.crypto import Verifier
from echorand.wire.messages import Block, Certificate

if TYPE_CHECKING:
    from echorand.net.peer import Peer

log = logging.getLogger("echorand.node.node")
"""The fork choice's log lines (`ForkChoice(..., log)`) under the node's name."""


class Running(Protocol):
    """The node's consensus, as the fork choice stops and restarts it."""

    @property
    def core(self) -> Consensus | None: ...

    @property
    def caught_up(self) -> bool: ...

    def start_consensus(self) -> None: ...

    def stop_consensus(self) -> None: ...


class NodeChains:
    """The fork choice's host on the node: its ledger, its consensus (`running`), its host
    (commits, evidence, the halt, the network that charges peers) and its admission."""

    def __init__(
        self,
        ledger: Ledger,
        params: Params,
        view: LedgerView,
        verifier: Verifier,
        host: NodeHost,
        admission: Admission,
        running: Running,
    ) -> None:
        self.ledger = ledger
        self.params = params
        self.view = view
        self._verifier = verifier
        self.host = host
        self.admission = admission
        self.running = running

    @property
    def chain(self) -> Ledger:
        return self.ledger

    @property
    def halted(self) -> str | None:
        return self.host.halted

    @property
    def decided_elsewhere(self) -> bool:
        core = self.running.core
        return core is not None and core.decided_elsewhere

    @property
    def genesis_hash(self) -> bytes:
        return self.ledger.genesis.hash

    @property
    def verifier(self) -> Verifier:
        return self._verifier

    def public_key(self, account: int) -> bytes | None:
        return self.view.public_key(account)

    def round_context(self, round: int) -> RoundContext:
        try:
            return round_context(self.view, self.params, round)
        except LedgerError as e:
            raise OutOfReach(str(e)) from e

    def stop_consensus(self) -> None:
        self.running.stop_consensus()

    def restart_consensus(self) -> None:
        """Consensus starts again on the tip if it ran, or is to run (caught up with the
        peers); before that, joining starts it."""
        if self.running.core is not None or self.running.caught_up:
            self.running.start_consensus()

    def rollback(self, to: int) -> list[Block]:
        return self.ledger.rollback(to)

    def commit(self, block: Block, certificate: Certificate) -> None:
        self.host.commit(block, certificate)

    def record_final(self, certificate: FinalCertificate) -> None:
        self.ledger.record_final(certificate)

    def rolled_back(self, blocks: Sequence[Block]) -> None:
        """The removed blocks' transactions, and the pool's, are admitted again on the new
        state (those that apply are relayed)."""
        self.admission.rolled_back([tx for block in blocks for tx in block.transactions])

    def fork_evidence(self, evidence: ForkEvidence) -> None:
        self.host.fork_evidence(evidence)

    def halt(self, reason: str) -> None:
        self.host.halt(reason)

    def penalize(self, peer: Peer | None, why: str) -> None:
        outlet = self.host.outlet
        if peer is not None and outlet is not None:
            outlet.penalize(peer, DropReason.BAD_CERTIFICATE, why)
