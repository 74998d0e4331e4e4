"""The node's LMDB ledger as the core and the sync server read it (`LedgerView`), and the
core's view of its chain: the tip (`ledger_tip`) and a round's context (`round_context`)."""

from __future__ import annotations

from echorand.core.consensus import Tip, tip_context
from echorand.ledger.ledger import Ledger
from echorand.protocol.committee import RoundContext
from echorand.protocol.delegation import ACTIVE_WINDOW
from echorand.protocol.params import Params
from echorand.protocol.proposers import policy_for
from echorand.protocol.sortition import StakeTable


class LedgerView:
    """The ledger as the core (`consensus.Ledger`) and the sync server (`BlockSource`) see it."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def stake_table(self, round: int) -> StakeTable:
        return self.ledger.stake_table(round)

    def delegate(self, round: int, account: int) -> int | None:
        """The account's delegate in the stake snapshot of `round` (§16)."""
        return self.ledger.delegate(round, account)

    def public_key(self, account: int) -> bytes | None:
        state = self.ledger.state
        return state.public_key(account) if 0 <= account < len(state) else None

    def tip(self) -> int:
        return self.ledger.tip

    def encoded_blocks(
        self, from_round: int, count: int, max_bytes: int | None = None
    ) -> list[tuple[bytes, bytes]]:
        return self.ledger.encoded_blocks(from_round, count, max_bytes)

    def final_proof(self, first: int, last: int) -> bytes | None:
        final = self.ledger.final_round
        if not first <= final <= last:
            return None
        cert = self.ledger.final_certificate(final)
        return None if cert is None else cert.proof().encode()


def _last(items: tuple[int, ...], count: int) -> tuple[int, ...]:
    return items[max(0, len(items) - count) :]


def ledger_tip(ledger: Ledger, params: Params, at: int | None = None) -> Tip:
    """The chain tip as the core sees it, from the ledger: what `Tip.after` would have made
    from the genesis on (recent authors and producers, CERT_tip for the next block to carry,
    and the tip before it, §16), without replaying the chain. `at`: as it was at that round
    (the blocks up to it held; the context of round `at + 1` then needs its stake snapshot,
    which reaches back `undo_rounds`)."""
    depth = policy_for(params).lock_depth
    chain = ledger.genesis.hash
    top = ledger.tip if at is None else at
    carried = ledger.proposed_certificate(top)
    recent = ledger.recent_authors(max(depth, ACTIVE_WINDOW) + 1, upto=top)
    previous = None
    if top >= 1:
        before = recent if carried is None else recent[:-1]
        r = top - 1
        seed, block_hash = ledger.seed(r), ledger.hash(r)
        assert seed is not None and block_hash is not None
        cert = ledger.proposed_certificate(r)
        producer = None if cert is None else cert.leader
        authors, producers = _last(before, depth), before[-ACTIVE_WINDOW:]
        previous = Tip(r, seed, block_hash, authors, producers, producer, cert, chain=chain)
    seed, block_hash = ledger.seed(top), ledger.hash(top)
    assert seed is not None and block_hash is not None, f"block {top} is held"
    return Tip(
        top,
        seed,
        block_hash,
        _last(recent, depth),
        recent[-ACTIVE_WINDOW:],
        None if carried is None else carried.leader,
        carried,
        previous,
        chain,
    )


def round_context(view: LedgerView, params: Params, round: int) -> RoundContext:
    """The context of `round` (at most tip + 1) on the ledger's chain: its stake table,
    delegates (§16) and the round before (whose sortition weighs the certificate its blocks
    carry). `LedgerError` when the stake snapshot of `round` is past the undo records."""
    return tip_context(params, view, ledger_tip(view.ledger, params, round - 1))
