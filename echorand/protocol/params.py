"""The protocol's parameters, in one place, with the whitepaper's symbols.

Times are integer milliseconds: the consensus core never reads a clock, it is
told the time by its caller.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

from echorand._native import FINAL_STEP

SEED_MODES = ("signature", "vrf")
"""What a leader's seed credential is (PROTOCOL §4, docs/protocol.md §4): an Ed25519 signature
of Q[r-1], which the leader can grind, or an RFC 9381 VRF proof (`echorand.wire.vrf`), which it
cannot."""

PROPOSER_POLICIES = ("sortition", "round-robin", "round-robin-seeded")
"""Who produces in step 1 (`echorand.protocol.proposers`): A_1 by stake, or the permissioned
order of PROTOCOL §7 over a fixed validator set (plain, or seeded by Q[r-1])."""


MAX_REWARD = 1 << 48
"""The largest reward level a genesis may set. Minting stops short of a supply of 2^63."""
MAX_REWARD_WINDOW = 4096


@dataclass(frozen=True, slots=True)
class Rewards:
    """The incentives of docs/protocol.md §16, fixed in the genesis (and its hash).

    A non-empty block of round r mints R_r units: `producer_share` % to its producer, the
    rest to the verifiers of its certificate (paid when the next block carries it). R
    follows the empty blocks among the last `window` up at once, from `floor` (none
    empty) to `ceiling` (all empty), and falls back towards `floor` by 1/2^`decay` of the
    gap each round. `floor = ceiling = 0` (the default) mints nothing.
    """

    floor: int = 0
    ceiling: int = 0
    window: int = 64
    decay: int = 3
    producer_share: int = 20

    def __post_init__(self) -> None:
        if not 0 <= self.floor <= self.ceiling <= MAX_REWARD:
            raise ValueError(
                f"rewards: need 0 <= floor <= ceiling <= 2^48, got floor={self.floor},"
                f" ceiling={self.ceiling}"
            )
        if not 1 <= self.window <= MAX_REWARD_WINDOW:
            raise ValueError(
                f"rewards.window must be in [1, {MAX_REWARD_WINDOW}], got {self.window}"
            )
        if not 0 <= self.decay <= 32:
            raise ValueError(f"rewards.decay must be in [0, 32], got {self.decay}")
        if not 0 <= self.producer_share <= 100:
            raise ValueError(
                f"rewards.producer_share must be in [0, 100] (percent), got {self.producer_share}"
            )

    @property
    def enabled(self) -> bool:
        return self.ceiling > 0


def _default_threshold(n_c: int) -> int:
    return (n_c * 69) // 100


def _default_final_threshold(n_c: int) -> int:
    return (n_c * 74) // 100


DEFAULT_ADVERSARY = Fraction(1, 5)
"""f: the adversary's stake fraction a genesis is checked against by default (PROTOCOL §5:
Algorand's assumption; the whitepaper's 1/3 needs committees of thousands of seats)."""


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
    """Who produces in step 1: one of PROPOSER_POLICIES (`echorand.protocol.proposers`)."""
    validators: int = 0
    """N: under a round-robin policy, the validators are accounts 0 .. N-1 (0 under sortition)."""
    fallback: bool = False
    """Whether the automatic fallback of docs/protocol.md §16 is on. Off by default: it makes
    safety depend on timing (a partition lets each side act for the other's principals)."""
    rewards: Rewards = field(default_factory=Rewards)
    """The block rewards (docs/protocol.md §16); none by default."""
    max_step: int = field(default=-1)
    """The last step with a committee of its own (4 + 3m, m >= k; default m = 2k): later
    steps reuse the committees of steps 5 .. max_step cyclically (PROTOCOL §5)."""
    f: Fraction = DEFAULT_ADVERSARY
    """The adversary's stake fraction the committees are checked against (PROTOCOL §5)."""
    t_f: int = field(default=-1)
    """t_f: a block is final with `echorand/final` weight > t_f (default floor(0.74 * N_c))."""
    insecure_committee: bool = False
    """The genesis waives the committee security check (PROTOCOL §5): devnets and tests."""
    seed_mode: str = "signature"
    """One of SEED_MODES: the leader's seed credential is a signature or a VRF proof
    (`echorand.protocol.seeds`); the issue's `seed` flag (genesis.json's top-level `seed`
    is Q[0])."""

    def __post_init__(self) -> None:
        if self.t_h < 0:
            object.__setattr__(self, "t_h", _default_threshold(self.n_c))
        if self.t_f < 0:
            object.__setattr__(self, "t_f", _default_final_threshold(self.n_c))
        if self.max_step < 0:
            object.__setattr__(self, "max_step", 4 + 6 * self.k)
        if not isinstance(self.f, Fraction):
            object.__setattr__(self, "f", Fraction(self.f))
        if self.n_g < 1 or self.n_c < 1:
            raise ValueError("n_g and n_c must be at least 1")
        if not 0 <= self.t_h < self.n_c:
            raise ValueError(f"t_h must be in [0, n_c): got t_h={self.t_h}, n_c={self.n_c}")
        if not 0 <= self.t_f < self.n_c:
            raise ValueError(f"t_f must be in [0, n_c): got t_f={self.t_f}, n_c={self.n_c}")
        if self.k < 1:
            raise ValueError(f"k must be at least 1, got {self.k}")
        if self.max_step < self.mu or (self.max_step - 4) % 3 or self.max_step >= FINAL_STEP:
            raise ValueError(
                f"max_step must be 4 + 3m with m >= k = {self.k} (at least mu = {self.mu}),"
                f" below 2^32 - 1; got {self.max_step}"
            )
        if not 0 <= self.f < 1 or self.f.denominator >= 1 << 32:
            raise ValueError(f"f must be a fraction in [0, 1) with a u32 denominator, got {self.f}")
        if self.lam_ms <= 0 or self.big_lam_ms <= 0:
            raise ValueError("lam_ms and big_lam_ms must be positive")
        if self.seed_mode not in SEED_MODES:
            raise ValueError(
                f"seed_mode must be one of {', '.join(SEED_MODES)}, got {self.seed_mode!r}"
            )
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
        """μ = 4 + 3k: past it, BBA's coin-flipped steps default to the empty block."""
        return 4 + 3 * self.k

    def committee_step(self, step: int) -> int:
        """The step whose committee (sortition input) step `step` uses (PROTOCOL §5): itself up
        to `max_step` (and for the reserved FINAL_STEP), else `5 + ((step - 5) mod (max_step -
        4))`, which keeps `step mod 3`. Votes and the coin keep the real step."""
        if step <= self.max_step or step == FINAL_STEP:
            return step
        return 5 + (step - 5) % (self.max_step - 4)
