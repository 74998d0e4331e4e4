"""Admission control: a node accepts what it can commit in time (docs/protocol.md §13).

Two bounds, both from the size of a block and the length of a round:

- **Blocks built to a time budget.** A block carries at most `block_txs()` transactions:
  the configured maximum, what Λ covers (Λ is the time to spread a 1 MB message, so a
  block stays within 1 MB), and what the node's measured per-transaction cost of a
  block (select, check, apply and recheck, `observe_block`) lets it handle in
  `budget_ms`. A round never waits on its own block's size.
- **Backpressure.** The API refuses new transactions (HTTP 429) while the mempool holds
  more than `backlog_rounds` blocks of `block_txs()`: what the node commits in that
  many rounds. The hint (`retry_after_ms`) is the time the rounds take to commit the
  excess, at the measured round length (`observe_round`), one round at least.

Each measure is an exponentially weighted average (`Ewma`), so that a burst or a slow
round moves it without deciding it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from echorand.transactions import TX_SIZE

__all__ = [
    "DEFAULT_BACKLOG_ROUNDS",
    "LAMBDA_BYTES",
    "LAMBDA_TXS",
    "Backpressure",
    "Busy",
    "Ewma",
]

LAMBDA_BYTES = 1 << 20
"""Λ is the time to spread a message of this size (PROTOCOL §4): a block stays within it."""
LAMBDA_TXS = LAMBDA_BYTES // TX_SIZE
"""Transactions in a block that Λ covers (6 853)."""
DEFAULT_BACKLOG_ROUNDS = 2
"""Rounds of full blocks the mempool may hold before the API says busy."""
EWMA_WEIGHT = 0.2
"""The weight of a new observation."""


@dataclass(slots=True)
class Ewma:
    """An exponentially weighted moving average, `value` until the first observation."""

    value: float
    weight: float = EWMA_WEIGHT

    def observe(self, x: float) -> None:
        self.value += self.weight * (x - self.value)


@dataclass(frozen=True, slots=True)
class Busy:
    """Why the API refuses a submission now, and when to try again."""

    queued: int
    limit: int
    retry_after_ms: int

    @property
    def retry_after_s(self) -> int:
        """The `Retry-After` header's whole seconds (one at least)."""
        return max(1, math.ceil(self.retry_after_ms / 1000))

    @property
    def reason(self) -> str:
        return (
            f"node busy: {self.queued} transactions queued, more than it commits in the"
            f" next rounds ({self.limit}); retry after {self.retry_after_ms} ms"
        )

    def to_json(self) -> dict[str, object]:
        return {
            "error": self.reason,
            "retry_after_ms": self.retry_after_ms,
            "queued": self.queued,
            "limit": self.limit,
        }


class Backpressure:
    """A node's block budget and admission bound, from what it measured."""

    def __init__(
        self,
        *,
        block_max_txs: int,
        budget_ms: float,
        round_ms: float,
        backlog_rounds: float = DEFAULT_BACKLOG_ROUNDS,
    ) -> None:
        """`round_ms`: the round length assumed until one is measured (λ + Λ)."""
        if budget_ms <= 0 or round_ms <= 0 or backlog_rounds <= 0:
            raise ValueError("the block budget, round length and backlog must be positive")
        self.block_max_txs = block_max_txs
        self.budget_ms = budget_ms
        self.backlog_rounds = backlog_rounds
        self.round_ms = Ewma(round_ms)
        self.tx_ms: Ewma | None = None
        """Milliseconds a transaction costs a block here (None until a block is measured)."""

    def observe_round(self, seconds: float) -> None:
        """A round's length (commit to commit)."""
        self.round_ms.observe(seconds * 1000)

    def observe_block(self, transactions: int, seconds: float) -> None:
        """What handling a block of `transactions` took (select, check, apply, recheck)."""
        if transactions <= 0:
            return
        per_tx = seconds * 1000 / transactions
        if self.tx_ms is None:
            self.tx_ms = Ewma(per_tx)
        else:
            self.tx_ms.observe(per_tx)

    def block_txs(self) -> int:
        """The most transactions a block of ours carries now (one at least, unless the
        configured maximum is 0)."""
        most = min(self.block_max_txs, LAMBDA_TXS)
        if self.tx_ms is None or self.tx_ms.value <= 0:
            return most
        return max(min(1, most), min(most, int(self.budget_ms / self.tx_ms.value)))

    def limit(self) -> int:
        """Transactions the mempool may hold before the API refuses more."""
        return max(1, int(self.backlog_rounds * self.block_txs()))

    def busy(self, queued: int) -> Busy | None:
        """Busy when `queued` exceeds the limit: wait for the rounds that commit the excess."""
        limit = self.limit()
        if queued <= limit:
            return None
        rounds = math.ceil((queued - limit) / max(1, self.block_txs()))
        return Busy(queued, limit, max(1, round(rounds * self.round_ms.value)))
