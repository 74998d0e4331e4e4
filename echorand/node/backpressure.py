"""Admission control: a node accepts what it can commit in time (docs/protocol.md §13).

Two bounds, from the size of a block and the length of a round:

- **Blocks built to a time budget.** A block carries at most `block_txs()` transactions:
  the configured maximum; what Λ covers (Λ is the time to spread a 1 MB message, so a
  block stays within 1 MB); what the node's measured per-transaction cost of a block
  (select, check, apply and recheck, `observe_block`) lets it handle in `budget_ms`;
  and what rounds allow: a round that ended empty while transactions waited halves the
  size, each round that committed a block raises it by 1/16 of the maximum (AIMD, as
  TCP's window). A round does not keep missing λ + Λ for its block's size.
- **Backpressure.** The API admits at a pace (`rate`, transactions a second: a token
  bucket of one round's worth), and the mempool may hold `backlog_seconds` of it
  (`limit()`, at least MIN_BACKLOG). The pace is steered by what the node promises, the
  time from admission to commit (`observe_delay`: the median over each committed
  block's transactions admitted here, less the round that committed them, is the time
  they queued), as TCP steers its window by loss, or CoDel by a queue's sojourn time:
  while it stays under `backlog_seconds` and the pace was what held the API back, the
  pace grows by INCREASE a block; once it is over, the pace falls to DECREASE of itself,
  at most once per `backlog_seconds` (what was admitted before the cut still shows until
  then). The pace never depends on what was committed (which the pace itself bounds: an
  estimate from it could only shrink). Until a delay is measured the pace is a full
  block a round (`block_txs()` over λ + Λ). Past the bound the API refuses new
  transactions (HTTP 429), and past twice it the node drops gossiped ones unread (their
  sender's node still holds them). A request is refused whole (429, body unread) when
  the pace has no room for it yet, or for a round's worth if it is larger: the hint
  (`retry_after_ms`) is when it will have, or the time the node takes to commit the
  excess past the bound, at most MAX_WAIT_ROUNDS rounds. Under a CPU overload the pool
  drains slower than it fills, what it holds waits longer, and the pace falls:
  admission gives way to consensus instead of starving it.
- **Fair shares** (`Shares`). The pace is shared by the API's clients (by address): while
  n are active, one that used more than its share (the pace over n, a bucket of a
  round's worth over n) may not take the bucket's last (n-1)/n of a round's worth, which
  waits for the others. A client alone, or within its share, sees the pace whole; a
  flooder (with valid transactions or not: the pace is taken before signatures are
  checked) gets what the others leave, and cannot hold them at 429.

Each measure is an exponentially weighted average (`Ewma`), so that a burst or a slow
round moves it without deciding it.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from echorand.wire.transactions import TX_SIZE

__all__ = [
    "DECREASE",
    "DEFAULT_BACKLOG_SECONDS",
    "GOSSIP_SLACK",
    "INCREASE",
    "LAMBDA_BYTES",
    "LAMBDA_TXS",
    "MIN_BACKLOG",
    "NODE_BUSY",
    "Backpressure",
    "Busy",
    "Ewma",
    "Shares",
]

LAMBDA_BYTES = 1 << 20
"""Λ is the time to spread a message of this size (PROTOCOL §4): a block stays within it."""
LAMBDA_TXS = LAMBDA_BYTES // TX_SIZE
"""Transactions in a block that Λ covers (6 853)."""
DEFAULT_BACKLOG_SECONDS = 0.5
"""Seconds of the admission pace the mempool may hold, and the most that what it holds may
queue, before the API says busy."""
MIN_BLOCK = 100
"""An empty round under load halves the block size (`Backpressure.cap`) down to this."""
MEASURED_BLOCK = 500
"""Blocks of at least this many transactions measure a transaction's cost."""
MAX_WAIT_ROUNDS = 8
"""A busy answer asks for this many rounds at most: the rate is an estimate, so a client
comes back to look."""
UNBOUNDED = 1 << 62
"""`room` when admission control is off."""
INCREASE = 1.05
"""The pace grows by this factor with each committed block while the delay is under the
target and the pace held the API back (about 1.5 times a second at 8 rounds a second)."""
DECREASE = 0.8
"""The pace falls to this share of itself when the delay is over the target."""
MAX_PACE_BLOCKS = 4
"""The pace never exceeds this many full blocks a round (a bound on a stale estimate)."""
MIN_WAIT_MS = 5
"""A busy answer asks for this long at least (a client does not spin)."""
MIN_BACKLOG = 100
"""The bound never falls below this many transactions (a stalled node still takes some)."""
GOSSIP_SLACK = 2
"""Gossiped transactions are dropped unread once the mempool holds this many bounds."""
NODE_BUSY = "node busy: past the admission bound; retry later"
"""A transaction of an API batch past the bound's room (the batch's head was admitted)."""
EWMA_WEIGHT = 0.2
"""The weight of a new observation."""
ACTIVE_SECONDS = 2.0
"""An API client counts as active (takes a share of the pace) this long after its last
request."""
MAX_CLIENTS = 4096
"""API clients tracked at once; past it the least recently seen is forgotten."""


@dataclass(slots=True)
class _Client:
    tokens: float
    filled_at: float
    seen: float


class Shares:
    """Each active API client's share of the admission pace (docs/protocol.md §13).

    A client is an address (`request.remote`: behind a proxy, all are one). Each has a
    bucket filled at the pace over the active clients, holding at most a round's worth
    over them; it is drawn by what the client is admitted. A client whose bucket does not
    cover its request is over its share: it may not take the last (n-1)/n of the pace's
    round's worth (`reserve`), which is left to the others. Work-conserving: when the
    others take nothing, the reserve is refilled and the heavy client gets the rest.
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._clients: OrderedDict[str, _Client] = OrderedDict()
        """Active clients, the least recently seen first."""

    def active(self) -> int:
        """Clients seen within ACTIVE_SECONDS."""
        self._forget(self._clock())
        return len(self._clients)

    def _forget(self, now: float) -> None:
        clients = self._clients
        while clients and (
            next(iter(clients.values())).seen < now - ACTIVE_SECONDS or len(clients) > MAX_CLIENTS
        ):
            clients.popitem(last=False)

    def _touch(self, client: str, rate: float, burst: float) -> tuple[_Client, int]:
        """The client's bucket, filled to now, and the number of active clients."""
        now = self._clock()
        c = self._clients.pop(client, None)
        self._forget(now)
        n = len(self._clients) + 1
        if c is None:
            c = _Client(burst / n, now, now)
        c.tokens = min(burst / n, c.tokens + max(0.0, now - c.filled_at) * rate / n)
        c.filled_at = c.seen = now
        self._clients[client] = c
        return c, n

    def reserve(self, client: str, wanted: int, rate: float, burst: float) -> float:
        """Tokens of the pace that `client`, asking for `wanted`, must leave to the others:
        none while it is alone or within its share, else (n-1)/n of a round's worth."""
        c, n = self._touch(client, rate, burst)
        if n == 1 or c.tokens >= min(max(1, wanted), burst / n):
            return 0.0
        return burst * (n - 1) / n

    def take(self, client: str, count: int) -> None:
        """`client` was admitted `count` transactions."""
        c = self._clients.get(client)
        if c is not None:
            c.tokens -= count


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
    """A node's block budget and admission pace, from what it measured."""

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
        self.rate = self._full_blocks()
        """The admission pace, transactions a second (`observe_delay`)."""
        self.delay: float | None = None
        """The last median delay from admission to commit, seconds (None: none yet)."""
        self._held = False
        """Whether the pace held the API back since the last delay observed."""
        self._cut_at: float | None = None
        """When the pace last fell (`DECREASE`)."""
        self._clock = clock
        self._filled_at = clock()
        self._tokens = self._burst()
        self.shares = Shares(clock)
        """The API clients' shares of the pace."""

    def _most(self) -> int:
        return min(self.block_max_txs, LAMBDA_TXS)

    def _full_blocks(self, blocks: float = 1) -> float:
        """`blocks` full blocks (of the maximum, Λ and the budget) a round, a second."""
        return blocks * self._budget_txs() * 1000 / self.round_ms.value

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

    def observe_delay(self, seconds: float) -> None:
        """A committed block's transactions waited `seconds` (their median) from their
        admission here. Less the round that committed them, that is the time they queued:
        the pace falls when it is over `backlog_seconds`, and grows when it is under and
        the pace held the API back. (The round is not queueing: on a busy machine a round
        alone may take half a second, and a target on the whole wait would then shut the
        API whatever the pool held.)"""
        self.delay = seconds
        now = self._clock()
        queued = seconds - self.round_ms.value / 1000
        if queued > self.backlog_seconds:
            if self._cut_at is None or now - self._cut_at >= self.backlog_seconds:
                self._fill()
                self.rate = max(self._least(), self.rate * DECREASE)
                self._cut_at = now
        elif self._held:
            self._fill()
            self.rate = min(self._full_blocks(MAX_PACE_BLOCKS), self.rate * INCREASE)
        self._held = False

    def _least(self) -> float:
        """The lowest pace: MIN_BACKLOG over the backlog."""
        return MIN_BACKLOG / self.backlog_seconds

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

    def limit(self) -> int:
        """Transactions the mempool may hold before the API refuses more."""
        return max(MIN_BACKLOG, int(self.rate * self.backlog_seconds))

    def _burst(self) -> float:
        """What the pace lets in at once: a round's worth (MIN_BACKLOG at least)."""
        return max(float(MIN_BACKLOG), self.rate * self.round_ms.value / 1000)

    def _fill(self) -> float:
        now = self._clock()
        elapsed = max(0.0, now - self._filled_at)
        self._filled_at = now
        self._tokens = min(self._burst(), self._tokens + elapsed * self.rate)
        return self._tokens

    def _reserve(self, client: str | None, wanted: int) -> float:
        if client is None:
            return 0.0
        return self.shares.reserve(client, wanted, self.rate, self._burst())

    def room(self, queued: int, wanted: int = 0, client: str | None = None) -> int:
        """How many more transactions the API may admit now: within the bound, and at the
        pace (a round's worth at once), less what `client`, if over its share, must leave
        to the others. `wanted`: how many a request asks for (the pace held it back if it
        gets fewer)."""
        if not self.enabled:
            return UNBOUNDED
        tokens = self._fill() - self._reserve(client, wanted)
        room = max(0, min(self.limit() - queued, int(tokens)))
        if room < wanted:
            self._held = True
        return room

    def admitted(self, count: int, client: str | None = None) -> None:
        """`count` transactions were let in (`room`), for `client` if an API client."""
        self._tokens -= count
        if client is not None:
            self.shares.take(client, count)

    def busy(
        self, queued: int, slack: float = 1, wanted: int = 1, client: str | None = None
    ) -> Busy | None:
        """Busy when `queued` reaches `slack` bounds (wait until the excess is committed),
        or, for the API (`slack` 1), when the pace has no room yet for a request of
        `wanted` transactions (or for a round's worth, if it is larger), beside what
        `client`, if over its share, must leave to the others: wait until it has."""
        if not self.enabled:
            return None
        limit = self.limit()
        round_ms = self.round_ms.value
        if queued >= slack * limit:
            excess_ms = (queued - limit + 1) * 1000 / max(1e-3, self.rate)
            wait = min(MAX_WAIT_ROUNDS * round_ms, max(round_ms, excess_ms))
            self._held = self._held or slack == 1
            return Busy(queued, limit, max(1, math.ceil(wait)))
        if slack != 1:
            return None
        reserve = self._reserve(client, wanted)
        need = min(max(1, wanted), max(1, int(self._burst() - reserve)), limit - queued)
        tokens = self._fill() - reserve
        if tokens >= need:
            return None
        self._held = True
        wait = (need - tokens) * 1000 / max(1e-3, self.rate)
        return Busy(
            queued, limit, max(MIN_WAIT_MS, min(MAX_WAIT_ROUNDS * round_ms, math.ceil(wait)))
        )
