"""Final blocks (PROTOCOL §6): the last final round of a ledger and the final certificates that
prove it. A final block, and every block before it, is never rolled back; the blocks after
it are tentative.
"""

from __future__ import annotations

import lmdb

from echorand.ledger.chain import Chain
from echorand.ledger.store import LedgerError, Store, u64
from echorand.protocol.finality import FinalCertificate

__all__ = ["Finals"]


class Finals:
    """The final round of the chain in `store` (`round`, 0: the genesis) and its proofs."""

    def __init__(self, store: Store, chain: Chain, round: int) -> None:
        self._store = store
        self._chain = chain
        self._round = round

    @property
    def round(self) -> int:
        """The last final block (0: the genesis)."""
        return self._round

    def is_final(self, round: int) -> bool:
        return 0 <= round <= self._round

    def record(self, cert: FinalCertificate) -> None:
        """Keep the proof that block `cert.round` is final (the caller checked it), and move
        the final round up to it. The block must be the one held at that round."""
        held = self._chain.hash(cert.round)
        if held is None or held != cert.block_hash:
            raise LedgerError(
                f"final certificate of round {cert.round} is for {cert.block_hash.hex()},"
                f" not the block held there ({'none' if held is None else held.hex()})"
            )
        final = max(self._round, cert.round)
        db = self._store.db

        def write(txn: lmdb.Transaction) -> None:
            txn.put(u64(cert.round), cert.encode(), db=db["finals"])
            txn.put(b"final", u64(final), db=db["meta"])

        self._store.write(write, self._chain.tip)
        self._round = final

    def certificate(self, round: int) -> FinalCertificate | None:
        """The stored proof that block `round` is final, if this node has it."""
        raw = self._chain.read("finals", round) if round >= 1 else None
        return None if raw is None else FinalCertificate.decode(raw)
