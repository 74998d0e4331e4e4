"""The committee of a round: what round r is computed from (the chain, r, Q[r-1], H(B_{r-1}),
the stake table), and who sits in each step's committee, who produces and in what order, and
who may speak in another account's seats (PROTOCOL §3, §5, §7; docs/protocol.md §16).

Shared by the round's state machine, the message checks, the certificate and finality rules.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from echorand.protocol.delegation import Mode, fallback_signer
from echorand.protocol.params import Params
from echorand.protocol.proposers import policy_for
from echorand.protocol.sortition import StakeTable
from echorand.protocol.sortition import weights as sortition_weights
from echorand.protocol.tally import empty_value
from echorand.wire.messages import Certificate

Delegates = Callable[[int], int | None]
"""An account's explicit delegate in the round's stake snapshot, None if it has none."""


class RoundContext:
    """What a round is computed from: the chain (its genesis hash, which every signature is
    bound to), r, Q[r-1], H(B_{r-1}), the stake table of round r, and the authors of the last
    non-empty blocks (which the round-robin proposer policies lock).

    When B_{r-1} is a proposed block, every block of round r carries CERT_{r-1}
    (docs/protocol.md §16): `prev_producer` is B_{r-1}'s producer, `carried` the certificate
    this node's producers put in their blocks, and `previous` the context of round r - 1,
    against whose sortition the certificates carried by others' blocks are checked."""

    __slots__ = (
        "_committees",
        "_first_seats",
        "_priorities",
        "_seats",
        "active",
        "authors",
        "carried",
        "chain",
        "delegates",
        "empty_value",
        "params",
        "policy",
        "prev_hash",
        "prev_producer",
        "previous",
        "round",
        "seed",
        "table",
    )

    def __init__(
        self,
        params: Params,
        round: int,
        seed: bytes,
        prev_hash: bytes,
        table: StakeTable,
        authors: Sequence[int] = (),
        active: Sequence[int] = (),
        delegates: Delegates | None = None,
        *,
        chain: bytes,
        prev_producer: int | None = None,
        carried: Certificate | None = None,
        previous: RoundContext | None = None,
    ) -> None:
        self.params = params
        self.chain = chain
        """The genesis hash: every signature of the round is over it (PROTOCOL §2)."""
        self.empty_value = empty_value(round, prev_hash)
        """{∅, ∅} of this round: (H(B_ε), 2^64 - 1) (PROTOCOL §5)."""
        self.prev_producer = prev_producer
        self.carried = carried
        self.previous = previous
        self.active = tuple(active)
        """M: the fallback's active members (docs/protocol.md §16)."""
        self.delegates = delegates
        self.round = round
        self.seed = seed
        self.prev_hash = prev_hash
        self.table = table
        self.authors = tuple(authors)
        self.policy = policy_for(params)
        self._committees: dict[int, dict[int, int]] = {}
        self._first_seats: dict[int, dict[int, int]] = {}
        self._priorities: dict[int, int] | None = None
        self._seats: list[int] | None = None

    def weights(self, step: int) -> dict[int, int]:
        """Seats per account in A_step (A_1: the producers, in priority order). Past
        `max_step`, a step has the committee of `params.committee_step(step)` (PROTOCOL §5)."""
        step = self.params.committee_step(step)
        weights = self._committees.get(step)
        if weights is None:
            if step == 1:
                weights = sortition_weights(self.producer_seats())
            else:
                weights = self.table.weights(self.seed, self.round, step, self.params.n_c)
            self._committees[step] = weights
        return weights

    @property
    def substitutes(self) -> bool:
        """Whether anyone may speak in another account's seats this round (§16)."""
        return self.delegates is not None or bool(self.active)

    def delegate(self, account: int) -> int | None:
        """The account's explicit delegate in this round's snapshot (§16)."""
        if self.delegates is None:
            return None
        delegate = self.delegates(account)
        return None if delegate == account else delegate

    def fallback(self, step: int, account: int) -> int | None:
        """C(P, s): the fallback of the principal's lowest seat in A_step (§16); None for
        producers (step 1), without active members, or when it would be the account itself."""
        if step < 2 or not self.active:
            return None
        step = self.params.committee_step(step)
        first = self._first_seats.get(step)
        if first is None:
            seats = self.table.committee(self.seed, self.round, step, self.params.n_c)
            first = {}
            for index, holder in enumerate(seats):
                first.setdefault(holder, index)
            self._first_seats[step] = first
        seat = first.get(account)
        if seat is None:
            return None
        signer = fallback_signer(self.active, seat, self.params.n_c)
        return None if signer == account else signer

    def may_substitute(self, step: int, principal: int, signer: int, mode: int) -> bool:
        """Whether `signer` may speak in `principal`'s seats of `step` in `mode`."""
        if mode == Mode.EXPLICIT:
            return step >= 2 and self.delegate(principal) == signer
        if mode == Mode.FALLBACK:
            return self.fallback(step, principal) == signer
        return False

    def weight(self, step: int, account: int) -> int:
        return self.weights(step).get(account, 0)

    def producer_seats(self) -> list[int]:
        """A_1: the account of each producer seat, best first (the proposer policy's)."""
        if self._seats is None:
            p = self.params
            self._seats = self.policy.producer_seats(
                self.table, self.seed, self.round, p.n_g, self.authors
            )
        return self._seats

    def priority(self, account: int) -> int | None:
        """The lowest seat index `account` holds in A_1 (lower is better), None if none."""
        if self._priorities is None:
            self._priorities = {}
            for index, producer in enumerate(self.producer_seats()):
                self._priorities.setdefault(producer, index)
        return self._priorities.get(account)
