"""The mempool as it was in Python: the slow, independent model of the native one.

`PyMempool` is the former `echorand.ledger.mempool.Mempool` (its queue, chains,
eviction heap and fee-order selection in Python; the state rules natively, through
`PendingState` and `AccountState.check`), kept for two uses: the tests drive it and
the native `MempoolQueue` through the same random admissions, blocks and rechecks
and compare every answer (tests/ledger/test_mempool_native.py), and
`echorand bench mempool` times both in the same run. Its behaviour is the spec of
`echorand.ledger.mempool.Mempool`; keep the two equal, not this one fast.
"""

from __future__ import annotations

import heapq
from collections.abc import Container, Iterable, Sequence
from dataclasses import dataclass

from echorand._native import AccountState, PendingState, Transaction
from echorand.ledger.mempool import (
    ALREADY_QUEUED,
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_COUNT,
    DEFAULT_MAX_PER_SENDER,
    FEE_TOO_LOW,
    MEMPOOL_FULL,
    SENDER_LIMIT,
)
from echorand.wire.transactions import BAD_SIGNATURE, NONCE_TOO_HIGH, TX_SIZE, verify_signatures

_MAY_PASS = (None, NONCE_TOO_HIGH)
"""`AccountState.check` answers that the queued transactions may still turn into a pass."""


@dataclass(slots=True, eq=False)
class _Entry:
    tx: Transaction
    id: bytes
    sender: bytes
    nonce: int
    fee: int
    seq: int
    """Arrival order: lower is earlier."""


class PyMempool:
    """Transactions waiting for a block, checked against `state` (the ledger's, kept current)."""

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
        self._state = state
        self.genesis_hash = genesis_hash
        """The network whose transactions are accepted (signatures are bound to it, PROTOCOL §2)."""
        self.max_count = max_count
        self.max_bytes = max_bytes
        self.max_per_sender = max_per_sender
        self.min_fee = min_fee
        self._capacity = min(max_count, max_bytes // TX_SIZE)
        self._by_id: dict[bytes, _Entry] = {}
        self._chains: dict[bytes, list[_Entry]] = {}
        self._tails: list[tuple[int, int, _Entry]] | None = None
        """Heap of chain ends by (fee, -seq): the eviction candidates (lazily cleaned).
        Kept only from the first eviction until the pool is half empty again: an
        admission into a pool with room pays no heap push."""
        self._seq = 0
        self._pending = PendingState()
        self._stale = True
        """Whether `_pending` must be rebuilt from the queue (after a recheck)."""
        self.evicted = 0
        """Transactions evicted for better-paying ones so far."""

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, tx_id: object) -> bool:
        return tx_id in self._by_id

    @property
    def nbytes(self) -> int:
        """Bytes of the queued transactions' encodings."""
        return len(self._by_id) * TX_SIZE

    def get(self, tx_id: bytes) -> Transaction | None:
        entry = self._by_id.get(tx_id)
        return None if entry is None else entry.tx

    def pending(self, sender: bytes) -> list[Transaction]:
        """The queued transactions of `sender`, in nonce order."""
        return [e.tx for e in self._chains.get(sender, ())]

    # --- admission -----------------------------------------------------------------

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
        reasons: list[str | None] = [None] * len(transactions)
        ids = [tx.id for tx in transactions]
        fresh = self._fresh(transactions, ids, reasons)
        checked = self._check([transactions[i] for i in fresh])
        passed = [i for i, reason in zip(fresh, checked, strict=True) if reason is None]
        for i, reason in zip(fresh, checked, strict=True):
            reasons[i] = reason
        bad = self._bad_signatures(transactions, ids, passed, verified, refuted)
        redo: set[bytes] = set()
        for i in passed:
            tx = transactions[i]
            reason = BAD_SIGNATURE if i in bad else self._admit(tx, ids[i], redo)
            if reason is not None:
                # Refused after the rules (a signature, a limit): its effect is in `_pending`.
                redo.add(tx.sender)
            reasons[i] = reason
        if redo:
            self._redo(redo)
        return reasons

    def to_verify(
        self, transactions: Sequence[Transaction], verified: Container[bytes] = ()
    ) -> list[Transaction]:
        """The transactions of a batch whose signature `add` would verify: not queued, not
        repeated, paying the minimum fee, not in `verified`, and not refused by the account
        state (an unknown sender, a used nonce, more than the balance: queued transactions
        only lower a balance). Nothing changes."""
        reasons: list[str | None] = [None] * len(transactions)
        ids = [tx.id for tx in transactions]
        fresh = [i for i in self._fresh(transactions, ids, reasons) if ids[i] not in verified]
        if not fresh:
            return []
        answers = self._state.check([transactions[i] for i in fresh])
        return [transactions[i] for i, r in zip(fresh, answers, strict=True) if r in _MAY_PASS]

    def _bad_signatures(
        self,
        transactions: Sequence[Transaction],
        ids: list[bytes],
        passed: list[int],
        verified: Container[bytes],
        refuted: Container[bytes],
    ) -> set[int]:
        """Indices among `passed` whose signature fails (verified here unless known)."""
        bad = {i for i in passed if ids[i] in refuted} if refuted else set()
        unknown = [i for i in passed if ids[i] not in verified and i not in bad]
        valid = verify_signatures([transactions[i] for i in unknown], self.genesis_hash)
        bad.update(i for i, ok in zip(unknown, valid, strict=True) if not ok)
        return bad

    def _check(self, batch: list[Transaction]) -> list[str | None]:
        """The rules' reason for each, against the senders' queued transactions.

        The accepted ones stay applied on `_pending`, which is rebuilt from the
        queue (O(pool), natively) first when a block changed the state or a
        queued effect was dropped.
        """
        if not batch:
            return []
        if self._stale or self._pending.version != self._state.version:
            # After a block (recheck): O(pool) natively, once.
            self._pending.rebuild(self._state, [e.tx for e in self._by_id.values()])
            self._stale = False
        return self._pending.check_and_add(self._state, batch)

    def _redo(self, senders: set[bytes]) -> None:
        """Step `senders`' pending state again from their queued transactions."""
        queued = [e.tx for s in senders for e in self._chains.get(s, ())]
        self._pending.redo(self._state, list(senders), queued)

    def _fresh(
        self, transactions: Sequence[Transaction], ids: list[bytes], reasons: list[str | None]
    ) -> list[int]:
        """Indices of the transactions not queued, not repeated, paying the minimum fee."""
        seen: set[bytes] = set()
        fresh = []
        for i, (tx, tx_id) in enumerate(zip(transactions, ids, strict=True)):
            if tx_id in self._by_id or tx_id in seen:
                reasons[i] = ALREADY_QUEUED
            elif tx.fee < self.min_fee:
                reasons[i] = FEE_TOO_LOW
            else:
                seen.add(tx_id)
                fresh.append(i)
        return fresh

    def _admit(self, tx: Transaction, tx_id: bytes, redo: set[bytes]) -> str | None:
        """Queue a transaction that passed the rules, within the limits.

        An evicted transaction's sender goes into `redo` (its pending state changed).
        """
        sender = tx.sender
        chain = self._chains.get(sender)
        if tx.nonce != self._next_nonce(sender, chain):
            # An earlier transaction of this sender in the batch was not queued.
            return NONCE_TOO_HIGH
        if chain is not None and len(chain) >= self.max_per_sender:
            return SENDER_LIMIT
        if len(self._by_id) >= self._capacity:
            victim = self._lowest_tail(exclude=sender)
            if victim is None or victim.fee >= tx.fee:
                return MEMPOOL_FULL
            self._remove_tail(victim)
            self.evicted += 1
            redo.add(victim.sender)
        entry = _Entry(tx, tx_id, sender, tx.nonce, tx.fee, self._seq)
        self._seq += 1
        self._by_id[tx_id] = entry
        self._chains.setdefault(sender, []).append(entry)
        self._push_tail(entry)
        return None

    def _next_nonce(self, sender: bytes, chain: list[_Entry] | None) -> int:
        if chain:
            return chain[-1].nonce + 1
        account = self._state.id_of(sender)
        return -1 if account is None else self._state.nonce(account)

    # --- eviction ------------------------------------------------------------------

    def _push_tail(self, entry: _Entry) -> None:
        if self._tails is None:
            return  # not kept: `_lowest_tail` builds it from the chains when needed
        heapq.heappush(self._tails, (entry.fee, -entry.seq, entry))
        if len(self._tails) > 2 * len(self._by_id) + 64:
            self._rebuild_tails()

    def _is_tail(self, entry: _Entry) -> bool:
        chain = self._chains.get(entry.sender)
        return bool(chain) and chain[-1] is entry and entry.id in self._by_id

    def _lowest_tail(self, *, exclude: bytes) -> _Entry | None:
        """The cheapest chain end not of `exclude` (left in the heap)."""
        if self._tails is None:
            self._rebuild_tails()
        assert self._tails is not None
        skipped = []
        found = None
        while self._tails:
            item = self._tails[0]
            entry = item[2]
            if not self._is_tail(entry):
                heapq.heappop(self._tails)
            elif entry.sender == exclude:
                skipped.append(heapq.heappop(self._tails))
            else:
                found = entry
                break
        for item in skipped:
            heapq.heappush(self._tails, item)
        return found

    def _remove_tail(self, entry: _Entry) -> None:
        chain = self._chains[entry.sender]
        chain.pop()
        del self._by_id[entry.id]
        if chain:
            self._push_tail(chain[-1])
        else:
            del self._chains[entry.sender]

    def _rebuild_tails(self) -> None:
        self._tails = [(c[-1].fee, -c[-1].seq, c[-1]) for c in self._chains.values()]
        heapq.heapify(self._tails)

    # --- blocks --------------------------------------------------------------------

    def select(self, max_count: int, max_bytes: int | None = None) -> list[Transaction]:
        """Transactions for a block: fee order across senders, nonce order within each.

        At most `max_count` transactions and `max_bytes` bytes of encodings.
        The pool is unchanged (`recheck` after the block is applied).
        """
        limit = max_count if max_bytes is None else min(max_count, max_bytes // TX_SIZE)
        heads = [(-c[0].fee, c[0].seq, 0, c) for c in self._chains.values()]
        heapq.heapify(heads)
        out: list[Transaction] = []
        while heads and len(out) < limit:
            _, _, i, chain = heapq.heappop(heads)
            out.append(chain[i].tx)
            if i + 1 < len(chain):
                nxt = chain[i + 1]
                heapq.heappush(heads, (-nxt.fee, nxt.seq, i + 1, chain))
        return out

    def recheck(self, senders: Iterable[bytes] | None = None) -> int:
        """Drop what the state no longer accepts (after a block); return how many.

        One native check of the queued transactions, each sender's chain in
        nonce order and alone (no credit from another sender's queued
        transaction counts, as at admission): included ones fail ("nonce too
        low"), and so does anything a block made invalid, with the rest of its
        sender's chain.
        With `senders` (the senders of the block just applied), only their
        chains are checked: a block lowers the balance and raises the nonce of
        its senders alone (recipients and the producer only gain), so no
        other queued transaction can have become invalid. O(block), not
        O(pool).
        """
        if senders is None:
            chains = list(self._chains.values())
        else:
            chains = [c for s in set(senders) if (c := self._chains.get(s)) is not None]
        entries = [e for chain in chains for e in chain]
        if not entries:
            return 0
        alone = PendingState()
        alone.rebuild(self._state, ())
        reasons = alone.check_and_add(self._state, [e.tx for e in entries])
        dropped = [e for e, r in zip(entries, reasons, strict=True) if r is not None]
        if not dropped:
            return 0
        self._stale = True
        gone = {id(e) for e in dropped}
        for e in dropped:
            del self._by_id[e.id]
        for chain in chains:
            sender = chain[0].sender
            kept = [e for e in chain if id(e) not in gone]
            if kept:
                self._chains[sender] = kept
                if kept[-1] is not chain[-1]:
                    self._push_tail(kept[-1])
            else:
                del self._chains[sender]
        if len(self._by_id) < self._capacity // 2:
            self._tails = None  # room again: admissions need no eviction order
        return len(dropped)
