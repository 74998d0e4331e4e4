"""The mempool: transactions waiting for a block, in fee order (docs/protocol.md §13).

The queue is native (`MempoolQueue`, native/src/pool.rs): this class is its facade.
A batch is admitted in one native call, whatever its size, plus one
`verify_signatures` call for the signatures. Each transaction is checked against its
sender's account after the sender's queued transactions (nonce and balance; the
pending state, cached per sender and stepped again from the sender's chain when a
block changed the account); then the signatures of those that passed. Cheap checks
first: a transaction that is queued already, pays too little, or breaks a rule (an
unknown sender, a used nonce, more than the balance) costs no signature check.
Credits from queued transactions are not counted (a block may include a credit's
spender without it). Each transaction gets its reason, or None when it is queued.
`to_verify` names, without changing anything, the transactions a batch would verify,
so that a node can verify them off its event loop first and pass the answers in
(`verified`, `refuted`).

- Per sender, queued transactions form a chain of consecutive nonces from
  the account's next nonce: a transaction that would leave a gap is refused
  ("nonce too high"), so every chain can go into a block as it is.
- `select` fills a block in fee order (higher fee first, then earlier
  arrival), taking each sender's transactions in nonce order.
- Limits: a count, bytes (every transaction is 153 bytes, so this is a count
  too), and a chain length per sender. When the pool is full, the
  lowest-fee transaction at the end of a chain (the latest arrival among
  equal fees) is evicted for a new one that pays strictly more; otherwise
  the new one is refused ("mempool full: fee too low").
- `recheck` after each block drops what the block included or made invalid,
  each chain checked alone from its sender's account.

The former Python implementation is the model this one is tested against
(`echorand.tools.benchmarks.mempool_model`).
"""

from __future__ import annotations

import sys
from collections.abc import Container, Iterable, Sequence

from echorand._native import POOL_REASONS, AccountState, MempoolQueue, Transaction
from echorand.wire.transactions import TX_SIZE, verify_signatures

__all__ = [
    "ALREADY_QUEUED",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_COUNT",
    "DEFAULT_MAX_PER_SENDER",
    "FEE_TOO_LOW",
    "MEMPOOL_FULL",
    "SENDER_LIMIT",
    "Mempool",
]

ALREADY_QUEUED: str = POOL_REASONS["ALREADY_QUEUED"]
FEE_TOO_LOW: str = POOL_REASONS["FEE_TOO_LOW"]
MEMPOOL_FULL: str = POOL_REASONS["MEMPOOL_FULL"]
SENDER_LIMIT: str = POOL_REASONS["SENDER_LIMIT"]

DEFAULT_MAX_COUNT = 100_000
DEFAULT_MAX_BYTES = 32 << 20
DEFAULT_MAX_PER_SENDER = 256


class Mempool:
    """Transactions waiting for a block, checked against `state` (the ledger's, kept current)."""

    __slots__ = ("_limits", "_queue", "genesis_hash")

    def __init__(
        self,
        state: AccountState,
        *,
        genesis_hash: bytes,
        max_count: int = DEFAULT_MAX_COUNT,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_per_sender: int = DEFAULT_MAX_PER_SENDER,
        min_fee: int = 0,
    ) -> None:
        if min(max_count, max_bytes // TX_SIZE, max_per_sender) < 1:
            raise ValueError("the mempool limits must leave room for one transaction")
        self.genesis_hash = genesis_hash
        """The network whose transactions are accepted (signatures are bound to it, PROTOCOL §2)."""
        self._limits = (max_count, max_bytes, max_per_sender, min_fee)
        capacity = min(max_count, max_bytes // TX_SIZE, sys.maxsize)
        self._queue = MempoolQueue(
            state,
            capacity=capacity,
            max_per_sender=min(max_per_sender, sys.maxsize),
            min_fee=min_fee,
        )

    @property
    def max_count(self) -> int:
        return self._limits[0]

    @property
    def max_bytes(self) -> int:
        return self._limits[1]

    @property
    def max_per_sender(self) -> int:
        return self._limits[2]

    @property
    def min_fee(self) -> int:
        return self._limits[3]

    def __len__(self) -> int:
        return len(self._queue)

    def __contains__(self, tx_id: object) -> bool:
        return tx_id in self._queue

    def __repr__(self) -> str:
        return f"Mempool({self._queue!r})"

    @property
    def nbytes(self) -> int:
        """Bytes of the queued transactions' encodings."""
        return len(self._queue) * TX_SIZE

    @property
    def evicted(self) -> int:
        """Transactions evicted for better-paying ones so far."""
        return self._queue.evicted

    def get(self, tx_id: bytes) -> Transaction | None:
        return self._queue.get(tx_id)

    def pending(self, sender: bytes) -> list[Transaction]:
        """The queued transactions of `sender`, in nonce order."""
        return self._queue.pending(sender)

    def add(
        self,
        transactions: Sequence[Transaction],
        verified: Container[bytes] = (),
        refuted: Container[bytes] = (),
    ) -> list[str | None]:
        """Admit a batch; the reason each transaction was refused, None when queued.

        Every check but the signature's first; then the signatures of the transactions
        that passed, except those whose answer is known: `verified` (ids whose signature
        this node verified already) and `refuted` (ids whose signature failed).
        """
        return self._queue.add(transactions, verified, refuted, self._verify)

    def _verify(self, transactions: list[Transaction]) -> list[bool]:
        return verify_signatures(transactions, self.genesis_hash)

    def to_verify(
        self, transactions: Sequence[Transaction], verified: Container[bytes] = ()
    ) -> list[Transaction]:
        """The transactions of a batch whose signature `add` would verify: not queued, not
        repeated, paying the minimum fee, not in `verified`, and not refused by the account
        state (an unknown sender, a used nonce, more than the balance: queued transactions
        only lower a balance). Nothing changes."""
        return self._queue.to_verify(transactions, verified)

    def select(self, max_count: int, max_bytes: int | None = None) -> list[Transaction]:
        """Transactions for a block: fee order across senders, nonce order within each.

        At most `max_count` transactions and `max_bytes` bytes of encodings.
        The pool is unchanged (`recheck` after the block is applied).
        """
        limit = max_count if max_bytes is None else min(max_count, max_bytes // TX_SIZE)
        return self._queue.select(limit)

    def recheck(self, senders: Iterable[bytes] | None = None) -> int:
        """Drop what the state no longer accepts (after a block); return how many.

        Each sender's chain is checked alone, in nonce order, from its account:
        included transactions fail ("nonce too low"), and so does anything a block
        made invalid, with the rest of its sender's chain. With `senders` (the
        senders of the block just applied), only their chains are checked: a block
        lowers the balance and raises the nonce of its senders alone (recipients and
        the producer only gain), so no other queued transaction can have become
        invalid. O(block), not O(pool).
        """
        return self._queue.recheck(senders)
