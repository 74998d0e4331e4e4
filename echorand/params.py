"""The protocol's parameters, in one place, with the whitepaper's symbols.

Times are integer milliseconds: the consensus core never reads a clock, it is
told the time by its caller.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SEED_TAG = b"echorand/seed"
BLOCK_TAG = b"echorand/block"
TX_TAG = b"echorand/tx"
MSG_TAG = b"echorand/msg"
GC_PROPOSAL_TAG = b"echorand/gc_proposal"
BBA_TAG = b"echorand/bba"
CERT_TAG = b"echorand/cert"

HASH_SIZE = 32
KEY_SIZE = 32
SIGNATURE_SIZE = 64
EMPTY_HASH = bytes(HASH_SIZE)

PROPOSER_POLICIES = ("sortition", "round-robin", "round-robin-seeded")
"""Who produces in step 1 (`echorand.proposers`): A_1 by stake, or the permissioned order of
PROTOCOL §7 over a fixed validator set (plain, or seeded by Q[r-1])."""


def _default_threshold(n_c: int) -> int:
    return (n_c * 69) // 100


@dataclass(frozen=True, slots=True)
class Params:
    """Consensus parameters, fixed in the genesis."""

    n_g: int = 20
    """N_g: producer seats drawn in step 1."""
    n_c: int = 1000
    """N_c: verifier seats drawn in each step s >= 2."""
    t_h: int = field(default=-1)
    """t_h: a value passes when its weight is > t_h (default floor(0.69 * N_c))."""
    k: int = 4
    """k: the number of three-step BBA loops; mu = 4 + 3k."""
    lam_ms: int = 200
    """λ: the time to spread a small message across the network."""
    big_lam_ms: int = 1000
    """Λ: the time to spread a 1 MB message across the network."""
    proposer_policy: str = "sortition"
    """Who produces in step 1: one of PROPOSER_POLICIES (`echorand.proposers`)."""
    validators: int = 0
    """N: under a round-robin policy, the validators are accounts 0 .. N-1 (0 under sortition)."""
    fallback: bool = False
    """Whether the automatic fallback of docs/protocol.md §16 is on. Off by default: it makes
    safety depend on timing (a partition lets each side act for the other's principals)."""

    def __post_init__(self) -> None:
        if self.t_h < 0:
            object.__setattr__(self, "t_h", _default_threshold(self.n_c))
        if self.n_g < 1 or self.n_c < 1:
            raise ValueError("n_g and n_c must be at least 1")
        if not 0 <= self.t_h < self.n_c:
            raise ValueError(f"t_h must be in [0, n_c): got t_h={self.t_h}, n_c={self.n_c}")
        if self.k < 1:
            raise ValueError(f"k must be at least 1, got {self.k}")
        if self.lam_ms <= 0 or self.big_lam_ms <= 0:
            raise ValueError("lam_ms and big_lam_ms must be positive")
        self._check_proposers()

    def _check_proposers(self) -> None:
        if self.proposer_policy not in PROPOSER_POLICIES:
            raise ValueError(
                f"proposer_policy must be one of {', '.join(PROPOSER_POLICIES)}, "
                f"got {self.proposer_policy!r}"
            )
        if self.proposer_policy == "sortition":
            if self.validators != 0:
                raise ValueError(
                    f"validators is for the round-robin policies; under sortition it must be 0, "
                    f"got {self.validators}"
                )
        elif self.validators < 1:
            raise ValueError(
                f"proposer_policy {self.proposer_policy!r} needs validators >= 1, "
                f"got {self.validators}"
            )

    @property
    def mu(self) -> int:
        """μ = 4 + 3k: the last step; the round ends in the empty block after it."""
        return 4 + 3 * self.k
