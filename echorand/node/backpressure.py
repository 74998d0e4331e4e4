"""Admission control: a node accepts what it can commit in time (docs/protocol.md §13).

Two bounds, from the size of a block and the length of a round:

- **Blocks built to a time budget.** A block carries at most `block_txs()` transactions:
  the configured maximum; what Λ covers (Λ is the time to spread a 1 MB message, so a
  block stays within 1 MB); what the node's measured per-transaction cost of a block
  (select, check, apply and recheck, `observe_block`) lets it handle in `budget_ms`;
  and what rounds allow: a round that ended empty while transactions waited halves the
  size, each round that committed a block raises it by 1/16 of the maximum (AIMD, as
  TCP's window). A round does not keep missing λ + Λ for its block's size.
- **Backpressure.** The node's commit rate is a block over a round: `block_txs()` over
  λ + Λ until measured, then the average transactions a round over the average round
  length (`observe_commit`), in rounds where the node was saturated (its mempool held
  its bound or more, so that the rate is what it can do, not what it was offered).
  The mempool may hold `backlog_seconds` of that rate (`limit()`, at least
  MIN_BACKLOG). Past it the API refuses new transactions (HTTP 429), and past twice it
  the node drops gossiped ones unread (their sender's node still holds them). Below it
  the API admits at the pace of the commits (`room`: a token bucket of one round's
  commits, refilled at PACE_HEADROOM times the rate): a burst admitted at once would
  take its round's time from consensus. The hint (`retry_after_ms`) is the time the node
  takes to commit the excess at its rate, one round at least and MAX_WAIT_ROUNDS at
  most. Under a CPU overload the rounds lengthen, the rate falls, and so does the
  bound: admission gives way to consensus instead of starving it.

Each measure is an exponentially weighted average (`Ewma`), so that a burst or a slow
round moves it without deciding it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from echorand.wire.transactions import TX_SIZE

__all__ = [
    "DEFAULT_BACKLOG_SECONDS",
    "GOSSIP_SLACK",
    "LAMBDA_BYTES",
    "LAMBDA_TXS",
    "MIN_BACKLOG",
    "NODE_BUSY",
    "Backpressure",
    "Busy",
    "Ewma",
]

LAMBDA_BYTES = 1 << 20
"""Λ is the time to spread a message of this size (PROTOCOL §4): a block stays within it."""
LAMBDA_TXS = LAMBDA_BYTES // TX_SIZE
"""Transactions in a block that Λ covers (6 853)."""
DEFAULT_BACKLOG_SECONDS = 0.5
"""Seconds of the commit rate the mempool may hold before the API says busy."""
MIN_BLOCK = 100
"""An empty round under load halves the block size (`Backpressure.cap`) down to this."""
MEASURED_BLOCK = 500
"""Blocks of at least this many transactions measure a transaction's cost."""
MAX_WAIT_ROUNDS = 8
"""A busy answer asks for this many rounds at most: the rate is an estimate, so a client
comes back to look."""
UNBOUNDED = 1 << 62
"""`room` when admission control is off."""
PACE_HEADROOM = 1.5
"""The API admits up to this many times the measured commit rate: the headroom lets the
rate be measured higher when the node can do more (else a low estimate would hold)."""
MIN_BACKLOG = 100
"""The bound never falls below this many transactions (a stalled node still takes some)."""
GOSSIP_SLACK = 2
"""Gossiped transactions are dropped unread once the mempool holds this many bounds."""
NODE_BUSY = "node busy: past the admission bound; retry later"
"""A transaction of an API batch past the bound's room (the batch's head was admitted)."""
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
        backlog_seconds: float = DEFAULT_BACKLOG_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        enabled: bool = True,
    ) -> None:
        """`round_ms`: the round length assumed until one is measured (λ + Λ); `clock`:
        seconds, for the admission pace. Not `enabled`: no bound at all (blocks of
        `block_max_txs`, every transaction admitted): the node as it was before, for
        comparisons."""
        if budget_ms <= 0 or round_ms <= 0 or backlog_seconds <= 0:
            raise ValueError("the block budget, round length and backlog must be positive")
        self.block_max_txs = block_max_txs
        self.enabled = enabled
        self.budget_ms = budget_ms
        self.backlog_seconds = backlog_seconds
        self.round_ms = Ewma(round_ms)
        self.tx_ms: Ewma | None = None
        """Milliseconds a transaction costs a block here (None until a block is measured)."""
        self.cap = float(self._most())
        """The block size rounds allow: halved by a round that ended empty under load,
        raised by 1/16 of the maximum with each round that committed a block."""
        self._txs: Ewma | None = None
        self._seconds: Ewma | None = None
        """Transactions and seconds of the rounds committed while saturated (their ratio
        is the commit rate: a ratio of averages, so an empty round counts its length)."""
        self._clock = clock
        self._filled_at = clock()
        self._tokens = self._burst()
        """The admission pace (`room`): a token bucket refilled at the commit rate."""

    def _most(self) -> int:
        return min(self.block_max_txs, LAMBDA_TXS)

    def observe_commit(
        self, transactions: int, seconds: float, queued: int, *, empty: bool = False
    ) -> None:
        """A round committed `transactions` (`empty`: the empty block) after `seconds`
        (since the last commit), with `queued` transactions in the mempool before the
        block's left."""
        if seconds <= 0:
            return
        self.round_ms.observe(seconds * 1000)
        most = self._most()
        if empty and queued > 0:
            self.cap = max(min(MIN_BLOCK, most), self.cap / 2)
        elif transactions > 0:
            self.cap = min(most, self.cap + most / 16)
        if queued >= self.limit():
            if self._txs is None or self._seconds is None:
                self._txs, self._seconds = Ewma(transactions), Ewma(seconds)
            else:
                self._txs.observe(transactions)
                self._seconds.observe(seconds)

    def observe_block(self, transactions: int, seconds: float) -> None:
        """What handling a block of `transactions` took (select, check, apply, recheck).
        Blocks of fewer than MEASURED_BLOCK say little: their fixed costs (an fsync)
        would pass for a transaction's."""
        if transactions < MEASURED_BLOCK:
            return
        per_tx = seconds * 1000 / transactions
        if self.tx_ms is None:
            self.tx_ms = Ewma(per_tx)
        else:
            self.tx_ms.observe(per_tx)

    def block_txs(self) -> int:
        """The most transactions a block of ours carries now (one at least, unless the
        configured maximum is 0)."""
        if not self.enabled:
            return self.block_max_txs
        return min(int(self.cap), self._budget_txs())

    def _budget_txs(self) -> int:
        """The block size of the maximum, Λ and the time budget (not what rounds allow)."""
        most = self._most()
        if self.tx_ms is None or self.tx_ms.value <= 0:
            return most
        return max(min(1, most), min(most, int(self.budget_ms / self.tx_ms.value)))

    def commit_rate(self) -> float:
        """Transactions a second the node commits when saturated: measured, else a full
        block (of the maximum, Λ and the budget) a round. (Not the block size rounds
        allow now: a few empty rounds of a busy machine would pass for a low capacity.)"""
        if self._txs is not None and self._seconds is not None:
            return self._txs.value / self._seconds.value
        return self._budget_txs() * 1000 / self.round_ms.value

    def limit(self) -> int:
        """Transactions the mempool may hold before the API refuses more."""
        return max(MIN_BACKLOG, int(self.commit_rate() * self.backlog_seconds))

    def _burst(self) -> float:
        """What the pace lets in at once: a round of commits (MIN_BACKLOG at least)."""
        return max(float(MIN_BACKLOG), self.commit_rate() * self.round_ms.value / 1000)

    def _fill(self) -> float:
        now = self._clock()
        elapsed = max(0.0, now - self._filled_at)
        self._filled_at = now
        pace = PACE_HEADROOM * self.commit_rate()
        self._tokens = min(self._burst(), self._tokens + elapsed * pace)
        return self._tokens

    def room(self, queued: int) -> int:
        """How many more transactions the API may admit now: within the bound, and at the
        pace of the commits (a round's worth at once): a burst admitted in one go would
        take the round's time from consensus."""
        if not self.enabled:
            return UNBOUNDED
        return max(0, min(self.limit() - queued, int(self._fill())))

    def admitted(self, count: int) -> None:
        """`count` transactions were let in (`room`)."""
        self._tokens -= count

    def busy(self, queued: int, slack: float = 1) -> Busy | None:
        """Busy when `queued` reaches `slack` bounds (wait until the excess is committed,
        one round at least), or, for the API (`slack` 1), when the pace has no room
        (wait a round)."""
        if not self.enabled:
            return None
        limit = self.limit()
        if queued < slack * limit:
            if slack != 1 or self._fill() >= 1:
                return None
            return Busy(queued, limit, max(1, math.ceil(self.round_ms.value)))
        excess_ms = (queued - limit + 1) * 1000 / max(1e-3, self.commit_rate())
        round_ms = self.round_ms.value
        wait = min(MAX_WAIT_ROUNDS * round_ms, max(round_ms, excess_ms))
        return Busy(queued, limit, max(1, math.ceil(wait)))
