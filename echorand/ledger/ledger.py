"""The ledger: certified blocks and the accounts they make, on LMDB (docs/protocol.md §13).

`Ledger` is what the node, the tools and the tests hold: one object over the
pieces of the `echorand.ledger` package (its docstring maps them).

A block and everything it changes commit in one write transaction; the
in-memory state (`AccountState`, the head, the stake history) changes only
after the commit succeeded. Block rewards (§16, `echorand.protocol.incentives`)
are minted in the block's write transaction: `meta.level` is R of the tip,
`meta.minted` every unit minted since the genesis, and the supply is always the
genesis total plus `minted`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from echorand._native import AccountState, Block, Certificate, Changes
from echorand.core.signed import Signed
from echorand.ledger import signed
from echorand.ledger.chain import Chain
from echorand.ledger.directory import check_meta, claim
from echorand.ledger.finals import Finals
from echorand.ledger.genesis import Genesis
from echorand.ledger.history import DEFAULT_UNDO_ROUNDS, History
from echorand.ledger.store import (
    DEFAULT_MAP_SIZE,
    LEDGER_FORMAT,
    DiskFullError,
    LedgerError,
    Store,
    uint,
)
from echorand.ledger.transition import check_rollback, create, prepare, rollback_reach, undo
from echorand.protocol.finality import FinalCertificate
from echorand.protocol.sortition import StakeTable
from echorand.wire.constants import KEY_SIZE

__all__ = [
    "DEFAULT_MAP_SIZE",
    "DEFAULT_UNDO_ROUNDS",
    "LEDGER_FORMAT",
    "Account",
    "DiskFullError",
    "Ledger",
    "LedgerError",
]


@dataclass(frozen=True, slots=True)
class Account:
    """One account as the ledger holds it."""

    id: int
    public_key: bytes
    balance: int
    nonce: int
    """Transactions the account has sent: the nonce of its next one."""
    delegate: int | None
    """Its last delegation's account, else its registrar (None: genesis, or self-delegated)."""


class Ledger:
    """Certified blocks, seeds and accounts of one chain, in one LMDB directory.

    `Ledger.open(path, genesis)` (or `Ledger(path, genesis)`); one process at a
    time (a lock file refuses a second). Not thread-safe: one thread applies
    blocks.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        genesis: Genesis,
        *,
        durable: bool = True,
        map_size: int = DEFAULT_MAP_SIZE,
        undo_rounds: int = DEFAULT_UNDO_ROUNDS,
    ) -> None:
        """Open the ledger at `path`, creating it from `genesis` when it is new.

        A ledger made from another genesis is refused (`LedgerError`).
        `durable=False` skips the fsync at each commit: a process crash loses
        nothing, a power cut may lose the last blocks (never half of one).
        """
        if undo_rounds < 1:
            raise ValueError(f"undo_rounds must be at least 1, got {undo_rounds}")
        self._genesis = genesis
        self._undo_rounds = undo_rounds
        path = Path(path)
        self._store = Store(path, claim(path, genesis), durable=durable, map_size=map_size)
        try:
            self._load(create(self._store, genesis) if self._store.fresh() else None)
        except BaseException:
            self._store.close()
            raise

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        genesis: Genesis,
        *,
        durable: bool = True,
        map_size: int = DEFAULT_MAP_SIZE,
        undo_rounds: int = DEFAULT_UNDO_ROUNDS,
    ) -> Ledger:
        """`Ledger(path, genesis, ...)`."""
        return cls(path, genesis, durable=durable, map_size=map_size, undo_rounds=undo_rounds)

    def _load(self, state: AccountState | None = None) -> None:
        """The head, the accounts (`state` when the ledger was just created, else read from
        the store), the final round and the stake history."""
        store, genesis = self._store, self._genesis
        meta = store.meta()
        check_meta(store.path, meta, genesis)
        count = uint(meta[b"accounts"])
        if state is None:
            state = store.accounts(count)
        self._chain = Chain(store, meta, genesis.params.rewards.window)
        if len(state) != count:
            raise LedgerError(f"{store.path}: {len(state)} account records, meta says {count}")
        self._state = state
        self._finals = Finals(store, self._chain, uint(meta[b"final"]))
        self._history = History(store, state, self._chain.tip, genesis.params, self._undo_rounds)

    # --- the state transition --------------------------------------------------------

    def apply(self, block: Block, certificate: Certificate) -> Changes:
        """Append the certified block of round tip + 1 and its changes, in one commit.

        Checks that the block extends the tip (round, prev_hash), that the
        certificate is for this round and this block, and the block's
        transactions against the state (all or nothing). The certificate's
        votes are not verified here: that needs the committee, which is the
        caller's (consensus or sync) job. `LedgerError` says what is wrong;
        nothing changes then.
        """
        params = self._genesis.params
        step = prepare(block, certificate, self._chain, self._state, params, self.committee_weights)
        step.commit(self._store, self._undo_rounds)
        # Committed: now the memory follows.
        self._state.commit(step.changes)
        self._history.push(step.changes)
        self._chain.advance(block, step.seed, step.level, step.minted)
        return step.changes

    def rollback(self, to: int) -> list[Block]:
        """Remove the tentative blocks after round `to`, in one write transaction: the account
        records (balances, nonces, delegates, created accounts), the stake snapshots, the
        reward level and the minted units return to what they were after block `to`. Never
        past the last final block, nor further back than the undo records reach
        (`LedgerError`). Returns the removed blocks, oldest first."""
        tip = self.tip
        check_rollback(to, tip, self.final_round, self._undo_rounds)
        removed = [self.block(r) for r in range(to + 1, tip + 1)]
        undo(self._store, tip, to, self._genesis.params.rewards)
        self._load()
        return [b for b in removed if b is not None]

    @property
    def rollback_floor(self) -> int:
        """The earliest round `rollback` can go back to: the last final block, or as far as
        the undo records let the stake tables be rebuilt."""
        return max(self.final_round, rollback_reach(self.tip, self._undo_rounds), 0)

    # --- final blocks (PROTOCOL §6) --------------------------------------------------

    @property
    def final_round(self) -> int:
        """The last final block (0: the genesis): it and every block before it are final,
        never rolled back; later blocks are tentative."""
        return self._finals.round

    def is_final(self, round: int) -> bool:
        return self._finals.is_final(round)

    def record_final(self, cert: FinalCertificate) -> None:
        """Keep the proof that block `cert.round` is final (the caller checked it), and move
        the final round up to it. The block must be the one held at that round."""
        self._finals.record(cert)

    def final_certificate(self, round: int) -> FinalCertificate | None:
        """The stored proof that block `round` is final, if this node has it."""
        return self._finals.certificate(round)

    # --- this node's signatures (PROTOCOL §6) ----------------------------------------

    def record_signed(self, records: Sequence[Signed]) -> None:
        """Make the messages this node is about to send durable, in one write transaction,
        before any of them leaves the node: after a crash it re-sends them instead of
        signing others (`echorand.core.signed`). Kept for the last `undo_rounds` rounds."""
        signed.record(self._store, records, self.tip)

    def signed_records(self) -> list[Signed]:
        """Every stored message this node signed, oldest round first."""
        return signed.read(self._store)

    # --- the head --------------------------------------------------------------------

    @property
    def path(self) -> Path:
        return self._store.path

    @property
    def genesis(self) -> Genesis:
        return self._genesis

    @property
    def tip(self) -> int:
        """The round of the last committed block (0: the genesis only)."""
        return self._chain.tip

    @property
    def tip_hash(self) -> bytes:
        """The hash of the last block: the `prev_hash` of the next one."""
        return self._chain.tip_hash

    @property
    def tip_seed(self) -> bytes:
        """Q[tip]: the seed of the next round's sortition."""
        return self._chain.tip_seed

    @property
    def reward_level(self) -> int:
        """R of the tip (§16): the level the next block's verifier pool is paid at."""
        return self._chain.level

    @property
    def minted(self) -> int:
        """Every unit the block rewards created since the genesis."""
        return self._chain.minted

    @property
    def supply(self) -> int:
        """The sum of all balances: the genesis total plus `minted`."""
        return int(self._state.total)

    @property
    def state(self) -> AccountState:
        """The accounts after the tip (read it; only the ledger changes it)."""
        return self._state

    # --- the blocks ------------------------------------------------------------------

    def hash(self, round: int) -> bytes | None:
        """The hash of block `round` (round 0: the genesis hash), None past the tip."""
        return self._chain.hash(round)

    def seed(self, round: int) -> bytes | None:
        """Q[round], None past the tip."""
        return self._chain.seed(round)

    def block(self, round: int) -> Block | None:
        return self._chain.block(round)

    def certificate(self, round: int) -> Certificate | None:
        return self._chain.certificate(round)

    def recent_authors(self, count: int, upto: int | None = None) -> tuple[int, ...]:
        """The producers of the last `count` non-empty blocks up to block `upto` (default the
        tip), oldest first (fewer near the genesis): the locked validators of the round-robin
        proposer policy (§14)."""
        return self._chain.recent_authors(count, upto)

    def certificate_to_carry(self) -> Certificate | None:
        """CERT_tip, which the next proposed block must carry (§16), if the tip is a
        proposed block; None after the empty block or the genesis."""
        return self.proposed_certificate(self.tip)

    def proposed_certificate(self, round: int) -> Certificate | None:
        """CERT_round if block `round` is a proposed block; None for the empty block, the
        genesis and rounds past the tip."""
        cert = self.certificate(round)
        return None if cert is None or cert.b == 1 else cert

    def encoded_blocks(
        self, from_round: int, count: int, max_bytes: int | None = None
    ) -> list[tuple[bytes, bytes]]:
        """(block, certificate) encodings of rounds `from_round ..`, at most `count`
        and at most MAX_SYNC_BLOCKS, stopping at the tip, and (with `max_bytes`) before
        their total passes `max_bytes`, the first always included: one sync response."""
        return self._chain.encoded_blocks(from_round, count, max_bytes)

    def blocks_range(self, from_round: int, count: int) -> list[tuple[Block, Certificate]]:
        """Certified blocks of rounds `from_round ..` (see `encoded_blocks`), decoded."""
        return [
            (Block.from_bytes(b), Certificate.from_bytes(c))
            for b, c in self.encoded_blocks(from_round, count)
        ]

    # --- the accounts and their stake ------------------------------------------------

    def account(self, id: int) -> Account | None:
        """The account with this id after the tip, or None."""
        if not 0 <= id < len(self._state):
            return None
        balance, nonce, delegate = self._state.account(id)
        return Account(id, self._state.public_key(id), balance, nonce, delegate)

    def account_by_key(self, public_key: bytes) -> Account | None:
        if len(public_key) != KEY_SIZE:
            raise ValueError(f"public_key must be {KEY_SIZE} bytes, got {len(public_key)}")
        id = self._state.id_of(public_key)
        return None if id is None else self.account(id)

    def stake_table(self, round: int) -> StakeTable:
        """The stake table of `round`: the balances after block max(0, round - 2).

        Rounds up to tip + 2, back `undo_rounds` blocks (`LedgerError` beyond). The
        table reads the ledger's `StakeHistory` (no copy; read-only) and stays right
        as the tip moves on, while the ledger keeps that block's changes.
        """
        return self._history.table(round)

    def delegate(self, round: int, account: int) -> int | None:
        """`account`'s delegate in the stake snapshot of `round` (the records after block
        max(0, round - 2), docs/protocol.md §16): the account named by its last delegation,
        else its registrar; None for none, or when the account does not exist then.

        Rounds up to tip + 2, back `undo_rounds` blocks like `stake_table`.
        """
        return self._history.delegate(round, account)

    def committee_weights(self, round: int, step: int) -> dict[int, int]:
        """Seats per account in A_step of `round` (step >= 2), from the ledger's sortition:
        rounds from tip + 2 back as far as `stake_table` reaches."""
        seed = self.seed(round - 1)
        if seed is None:
            raise LedgerError(f"round {round}: no seed Q[{round - 1}] (the tip is {self.tip})")
        return self._history.weights(round, step, seed)

    # --- checks ----------------------------------------------------------------------

    def stored_records(self) -> bytes:
        """Every stored account record in id order, read from disk (for checks)."""
        return self._store.records()

    def check_store(self) -> None:
        """Check that the disk holds exactly the tip's state: every per-round
        database ends at the tip, and the account records are the in-memory
        state. `LedgerError` names what differs. O(accounts): for tools and tests.
        """
        self._store.check(self.tip, self._state, self._genesis.total, self.minted)

    # --- closing ---------------------------------------------------------------------

    def close(self) -> None:
        self._store.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Ledger({str(self.path)!r}, tip={self.tip}, accounts={len(self._state)})"
