"""Stake history: the stake tables and the delegates of the rounds a ledger can reach (PROTOCOL
§3, docs/protocol.md §16).

The stake table of round r is the balances after block max(0, r - 2). One
`StakeHistory` holds them all: the balances after the tip in one Fenwick tree,
updated in place at each block (O(changed accounts · log n)), and the changes
of the last `undo_rounds` blocks, through which the table after any of those
blocks is read without a copy. Reopened, it is rebuilt from the records and
the undo records, which are kept for as many blocks. The delegates of round r
come from the same snapshot: the current records for the tip, the kept changes
(which hold old delegates) for older blocks.
"""

from __future__ import annotations

from echorand._native import AccountState, Changes, StakeHistory
from echorand.ledger.store import LedgerError, Store, u64
from echorand.protocol.params import Params
from echorand.protocol.sortition import StakeTable, stake_round

__all__ = ["DEFAULT_UNDO_ROUNDS", "History"]

DEFAULT_UNDO_ROUNDS = 64
"""Undo records kept: the stake tables of the last this many rounds can be rebuilt."""


class History:
    """The stake snapshots of the accounts `state` (the ledger's, after its tip `tip`), and
    the delegates in them, back `keep` blocks: rebuilt from `store`'s undo records."""

    def __init__(
        self, store: Store, state: AccountState, tip: int, params: Params, keep: int
    ) -> None:
        self._state = state
        self._params = params
        self._keep = keep
        self._stakes = StakeHistory(state.balances(), tip, keep=keep)
        for undo in _kept_undos(store, tip, keep):
            try:
                self._stakes.recall(undo)
            except ValueError as e:
                block = self._stakes.oldest
                raise LedgerError(f"{store.path}: undo record of block {block}: {e}") from None

    def push(self, changes: Changes) -> None:
        """The snapshot after the block whose commit made `changes` (block tip + 1)."""
        self._stakes.push(changes)

    def table(self, round: int) -> StakeTable:
        """The stake table of `round`: the balances after block max(0, round - 2).

        Rounds up to tip + 2, back `keep` blocks (`LedgerError` beyond). The table reads
        the `StakeHistory` (no copy; read-only) and stays right as the tip moves on, while
        the history keeps that block's changes.
        """
        after = self._snapshot(round, "balances")
        return self._stakes.table(after)

    def delegate(self, round: int, account: int) -> int | None:
        """`account`'s delegate in the stake snapshot of `round` (the records after block
        max(0, round - 2)): the account named by its last delegation, else its registrar;
        None for none, or when the account does not exist then. Rounds as `table`."""
        after = self._snapshot(round, "delegates")
        if not 0 <= account < len(self._state):
            return None
        current = self._state.account(account)[2]
        if after == self._stakes.block:
            return current
        return self._stakes.delegate(after, account, current)

    def weights(self, round: int, step: int, seed: bytes) -> dict[int, int]:
        """Seats per account in A_step of `round` (step >= 2), drawn with Q[round - 1]
        `seed` from the table of `round`."""
        params = self._params
        return self.table(round).weights(seed, round, params.committee_step(step), params.n_c)

    def _snapshot(self, round: int, what: str) -> int:
        """The block whose records make the snapshot of `round`, if the history has it."""
        after = stake_round(round)
        tip = self._stakes.block
        if after > tip:
            raise LedgerError(
                f"round {round} needs the {what} after block {after}; the tip is {tip}"
            )
        if after < self._stakes.oldest:
            raise LedgerError(
                f"round {round}: the undo record of block {after + 1} is gone (kept for"
                f" {self._keep} blocks)"
            )
        return after


def _kept_undos(store: Store, tip: int, keep: int) -> list[bytes]:
    """The undo records of the tip block and those before it, newest first: at most `keep`,
    down to the first one missing (rounds rolled back and not redone leave fewer)."""
    undos = []
    with store.begin() as txn:
        for r in range(tip, max(0, tip - keep), -1):
            undo = txn.get(u64(r), db=store.db["undo"])
            if undo is None:
                break
            undos.append(bytes(undo))
    return undos
