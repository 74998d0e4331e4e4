"""What a grinding leader gains, behind `echorand sim grinding` (PROTOCOL §4's known weakness).

The seed of round r is `Q[r] = H(S || u64be(r))`, `S` the leader's Ed25519
signature of the seed payload. Ed25519 lets a signer pick its nonce, so a
leader can make as many valid `S` as it likes and publish the one whose
seed suits it. With a VRF (`echorand.wire.vrf`, RFC 9381) the output of the
payload is unique: `Q[r] = H(beta || u64be(r))` leaves nothing to choose.

The model: a stake table, a coalition holding a fraction f of the stake;
the leader of round r is the account of seat 0 of step 1 (PROTOCOL §3).
When a coalition account leads round r under `--seed-kind signature`, it
makes k signatures and keeps the seed best for round r + 1 by its
objective: `seats` (its seats in the committee of `--step`) or `lead`
(leading r + 1, then seats). Honest leaders publish their one seed. The
loop is native (`echorand._native.GrindingStudy`): one call per segment of
rounds, the k candidates signed and scored on all cores without the GIL.

Beside each measured share stands the exact expectation of the same model
with ideal hashes (`expected`): a two-state Markov chain of who leads, and
the order statistics of the binomial seat counts.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from pathlib import Path

import orjson
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from echorand._native import GrindingStudy, devnet_seeds
from echorand.protocol.sortition import StakeTable
from echorand.sim.stats import binomial_pmf

KINDS = ("signature", "vrf")
OBJECTIVES = ("lead", "seats")
SEGMENT = 25
"""Rounds per native call: the progress bar moves (and Ctrl-C is seen) between calls."""
NEGLIGIBLE = 1e-18
"""Mixture weights below this are left out of the exact model."""


@dataclass(frozen=True, slots=True)
class GrindingConfig:
    """What one `echorand sim grinding` sweeps."""

    fractions: tuple[float, ...] = (0.1, 0.2, 0.33)
    candidates: tuple[int, ...] = (1, 16, 256, 4096)
    kinds: tuple[str, ...] = KINDS
    objective: str = "lead"
    rounds: int = 1000
    accounts: int = 1000
    seats: int = 1000
    step: int = 2
    seed: int = 1

    def __post_init__(self) -> None:
        if not self.fractions or not all(0.0 < f < 1.0 for f in self.fractions):
            raise ValueError(f"fractions must be in (0, 1), got {self.fractions}")
        if not self.candidates or min(self.candidates) < 1:
            raise ValueError(f"candidates must be at least 1, got {self.candidates}")
        if not self.kinds or not set(self.kinds) <= set(KINDS):
            raise ValueError(f"kinds must be among {KINDS}, got {self.kinds}")
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {self.objective!r}")
        if min(self.rounds, self.accounts, self.seats) < 1 or self.step < 2:
            raise ValueError("rounds, accounts and seats must be >= 1, step >= 2")

    def to_json(self) -> dict[str, object]:
        return {
            "fractions": list(self.fractions),
            "candidates": list(self.candidates),
            "kinds": list(self.kinds),
            "objective": self.objective,
            "rounds": self.rounds,
            "accounts": self.accounts,
            "seats": self.seats,
            "step": self.step,
            "seed": self.seed,
        }


# --- the exact model ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Expected:
    """The model's shares over `rounds` rounds, and their approximate standard errors."""

    leader_share: float
    leader_se: float
    seat_share: float
    seat_se: float


def max_moments(pmf: Sequence[float], m: int) -> tuple[float, float]:
    """Mean and variance of the largest of m independent draws of a distribution on 0 .. n."""
    n = len(pmf) - 1
    tail = [*list(accumulate(reversed(pmf)))[::-1], 0.0]  # tail[x] = P(X >= x)
    mean = second = previous = 0.0
    for x in range(n + 1):
        above = min(1.0, tail[x + 1])
        # P(max <= x) = (1 - P(X > x))^m, from the tail so that it stays exact near 1.
        cdf = math.exp(m * math.log1p(-above)) if above < 1.0 else 0.0
        p, previous = cdf - previous, cdf
        mean += x * p
        second += x * x * p
    return mean, max(0.0, second - mean * mean)


def _ground_seats(f: float, k: int, seats: int, objective: str) -> tuple[float, float]:
    """Mean and variance of the coalition's seats in round r + 1 after it ground round r."""
    pmf = binomial_pmf(seats, f)
    if objective == "seats":
        return max_moments(pmf, k)
    # `lead`: the best seats among the M ~ Binomial(k, f) candidates that lead, or among
    # all k when none does.
    mean = second = 0.0
    for m, w in enumerate(binomial_pmf(k, f)):
        if w < NEGLIGIBLE:
            continue
        mu, var = max_moments(pmf, m if m >= 1 else k)
        mean += w * mu
        second += w * (var + mu * mu)
    return mean, max(0.0, second - mean * mean)


def expected_shares(f: float, k: int, objective: str, seats: int, rounds: int) -> Expected:
    """The model's leader and seat shares for a coalition of stake f grinding k candidates.

    Who leads is a two-state chain: after an honest round the coalition leads
    with probability f; after one it led, with probability `a` (`1 - (1 - f)^k`
    for `lead`, f for `seats`). Round 1's leader comes from Q[0]. The seats of
    round r + 1 follow from who led round r. The standard errors are the
    chain's asymptotic ones (exact for k = 1, where rounds are independent).
    """
    a = 1.0 - (1.0 - f) ** k if objective == "lead" else f
    lam = a - f
    pi = f / (1.0 - lam)
    mu_h, var_h = f * seats, f * (1.0 - f) * seats  # a round after an honest one
    mu_g, var_g = _ground_seats(f, k, seats, objective) if k > 1 else (mu_h, var_h)
    p, leads, seat_sum = f, 0.0, mu_h  # p: P(coalition leads round r), round 1 first
    for _ in range(rounds - 1):
        leads += p
        seat_sum += p * mu_g + (1.0 - p) * mu_h
        p = p * a + (1.0 - p) * f
    leads += p
    inflation = (1.0 + lam) / (1.0 - lam)
    leader_var = pi * (1.0 - pi) * inflation
    seat_var = pi * var_g + (1.0 - pi) * var_h + pi * (1.0 - pi) * (mu_g - mu_h) ** 2 * inflation
    return Expected(
        leader_share=leads / rounds,
        leader_se=math.sqrt(leader_var / rounds),
        seat_share=seat_sum / (rounds * seats),
        seat_se=math.sqrt(seat_var / rounds) / seats,
    )


# --- the runs -------------------------------------------------------------------------------


def _derived(tag: bytes, seed: int) -> bytes:
    return hashlib.sha256(b"echorand/grinding/" + tag + b"\x00" + seed.to_bytes(8, "big")).digest()


@dataclass(frozen=True, slots=True)
class World:
    """What one seed fixes: balances, keys, the genesis hash, Q[0] and the coalition order."""

    balances: tuple[int, ...]
    secrets: bytes
    genesis_hash: bytes
    q0: bytes
    order: tuple[int, ...]

    @classmethod
    def of(cls, accounts: int, seed: int) -> World:
        rng = random.Random(seed)
        balances = tuple(rng.randrange(1000, 2000) for _ in range(accounts))
        order = list(range(accounts))
        rng.shuffle(order)
        secrets = devnet_seeds(_derived(b"keys", seed), accounts)
        return cls(
            balances, secrets, _derived(b"genesis", seed), _derived(b"q0", seed), tuple(order)
        )

    def coalition(self, fraction: float) -> tuple[list[int], float]:
        """Accounts in the seed's order while their stake fits in `fraction`; and their share."""
        total = sum(self.balances)
        members, stake = [], 0
        for account in self.order:
            if stake + self.balances[account] > fraction * total:
                break
            members.append(account)
            stake += self.balances[account]
        return members, stake / total


@dataclass(frozen=True, slots=True)
class GrindingRun:
    """One (seed kind, coalition, k) run and the model beside it."""

    kind: str
    objective: str
    fraction: float
    coalition_stake: float
    candidates: int
    rounds: int
    seats: int
    step: int
    leaderships: int
    coalition_seats: int
    ground_rounds: int
    expected: Expected
    seconds: float

    @property
    def leader_share(self) -> float:
        return self.leaderships / self.rounds

    @property
    def seat_share(self) -> float:
        return self.coalition_seats / (self.rounds * self.seats)

    @property
    def leader_gain(self) -> float:
        """Leader share over the coalition's stake: 0 for no gain."""
        return self.leader_share - self.coalition_stake

    @property
    def seat_gain(self) -> float:
        return self.seat_share - self.coalition_stake

    def to_json(self) -> dict[str, object]:
        e = self.expected
        return {
            "kind": self.kind,
            "objective": self.objective,
            "fraction": self.fraction,
            "coalition_stake": self.coalition_stake,
            "candidates": self.candidates,
            "rounds": self.rounds,
            "seats": self.seats,
            "step": self.step,
            "leaderships": self.leaderships,
            "leader_share": self.leader_share,
            "leader_gain": self.leader_gain,
            "expected_leader_share": e.leader_share,
            "leader_se": e.leader_se,
            "coalition_seats": self.coalition_seats,
            "seat_share": self.seat_share,
            "seat_gain": self.seat_gain,
            "expected_seat_share": e.seat_share,
            "seat_se": e.seat_se,
            "ground_rounds": self.ground_rounds,
            "seconds": self.seconds,
        }


@dataclass(frozen=True, slots=True)
class GrindingResult:
    config: GrindingConfig
    runs: list[GrindingRun] = field(default_factory=list)
    seconds: float = 0.0

    def to_json(self) -> dict[str, object]:
        return {
            "config": self.config.to_json(),
            "runs": [r.to_json() for r in self.runs],
            "seconds": self.seconds,
        }


def _plan(config: GrindingConfig) -> list[tuple[str, float, int]]:
    """(kind, fraction, k) of every run: a VRF leader has one candidate whatever k is."""
    plan = []
    for f in config.fractions:
        for kind in config.kinds:
            ks = config.candidates if kind == "signature" else (1,)
            plan += [(kind, f, k) for k in ks]
    return plan


def run_study(
    config: GrindingConfig, on_progress: Callable[[int, int], None] | None = None
) -> GrindingResult:
    """Every run of the sweep, on one world (common random numbers across runs).

    `on_progress(done, total)` counts rounds after each native segment.
    """
    world = World.of(config.accounts, config.seed)
    table = StakeTable(list(world.balances))
    plan = _plan(config)
    total, done = config.rounds * len(plan), 0
    runs = []
    start = time.perf_counter()
    for kind, fraction, k in plan:
        members, stake = world.coalition(fraction)
        study = GrindingStudy(
            table,
            members,
            world.secrets,
            kind=kind,
            candidates=k,
            objective=config.objective,
            step=config.step,
            seats=config.seats,
            genesis_hash=world.genesis_hash,
            seed=world.q0,
        )
        began = time.perf_counter()
        while study.rounds < config.rounds:
            segment = min(SEGMENT, config.rounds - study.rounds)
            study.run(segment)
            done += segment
            if on_progress is not None:
                on_progress(done, total)
        runs.append(
            GrindingRun(
                kind=kind,
                objective=config.objective,
                fraction=fraction,
                coalition_stake=stake,
                candidates=k,
                rounds=config.rounds,
                seats=config.seats,
                step=config.step,
                leaderships=study.leaderships,
                coalition_seats=study.coalition_seats,
                ground_rounds=study.ground_rounds,
                expected=expected_shares(stake, k, config.objective, config.seats, config.rounds),
                seconds=time.perf_counter() - began,
            )
        )
    return GrindingResult(config, runs, time.perf_counter() - start)


# --- command line -------------------------------------------------------------------------


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def add_grinding_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `echorand sim grinding`."""
    d = GrindingConfig()
    parser.description = (
        "What a leader gains by grinding its seed: Ed25519 seed signatures (the signer picks "
        "the nonce, so k candidates) against a VRF (one output), swept over k and the "
        "coalition's stake, beside the exact model."
    )
    add = parser.add_argument
    add(
        "--fractions",
        type=_fraction,
        nargs="+",
        default=list(d.fractions),
        metavar="F",
        help="the coalition's stake fractions (default %(default)s)",
    )
    add(
        "--candidates",
        type=_positive,
        nargs="+",
        default=list(d.candidates),
        metavar="K",
        help="signatures a coalition leader tries (default %(default)s)",
    )
    add(
        "--seed-kind",
        choices=(*KINDS, "both"),
        default="both",
        help="signature, vrf or both (default both)",
    )
    add(
        "--objective",
        choices=OBJECTIVES,
        default=d.objective,
        help="lead: lead round r + 1, then seats; seats: committee seats (default lead)",
    )
    add("--rounds", type=_positive, default=d.rounds, help="rounds a run (default %(default)s)")
    add(
        "--accounts",
        type=_positive,
        default=d.accounts,
        help="accounts in the stake table, balances uniform in [1000, 2000) (default %(default)s)",
    )
    add(
        "--seats",
        type=_positive,
        default=d.seats,
        help="seats of the committee counted (N_c, default %(default)s)",
    )
    add(
        "--step",
        type=int,
        default=d.step,
        help="the step whose committee is counted, >= 2 (default %(default)s)",
    )
    add("--seed", type=int, default=d.seed, help="the run's seed: same seed, same run (default 1)")
    add("--json", action="store_true", help="print one JSON object")
    add("--plot", type=Path, default=None, metavar="FILE", help="save the figure as a PNG file")


def config_from_args(args: argparse.Namespace) -> GrindingConfig:
    kinds = KINDS if args.seed_kind == "both" else (args.seed_kind,)
    return GrindingConfig(
        fractions=tuple(args.fractions),
        candidates=tuple(args.candidates),
        kinds=kinds,
        objective=args.objective,
        rounds=args.rounds,
        accounts=args.accounts,
        seats=args.seats,
        step=args.step,
        seed=args.seed,
    )


def run_grinding(args: argparse.Namespace, plot: Callable[[GrindingResult, Path], Path]) -> int:
    """`echorand sim grinding`: run the sweep, print the table or the JSON, and plot with
    `plot` (`grinding_plots.save_plot`, which the CLI passes: matplotlib only when asked)."""
    err = Console(stderr=True)
    try:
        config = config_from_args(args)
        result = _run_with_progress(config, show=not args.json)
    except ValueError as e:
        err.print(f"[red]echorand sim grinding: error:[/] {e}")
        return 2
    if args.json:
        print(orjson.dumps(result.to_json()).decode())
    else:
        print_result(result)
    if args.plot is not None:
        err.print(f"saved {plot(result, args.plot)}")
    return 0


def _run_with_progress(config: GrindingConfig, *, show: bool) -> GrindingResult:
    if not show:
        return run_study(config)
    columns = (
        TextColumn("rounds"),
        BarColumn(),
        TextColumn("{task.completed:,}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task("rounds", total=1)
        return run_study(
            config, lambda done, total: progress.update(task, completed=done, total=total)
        )


def _pct(x: float) -> str:
    return f"{x * 100:.2f} %"


def print_result(result: GrindingResult, console: Console | None = None) -> None:
    """One row per run, the model beside each measured share."""
    c = result.config
    table = Table(
        title=f"seed grinding, objective {c.objective}: {c.accounts} accounts, {c.rounds} rounds "
        f"a run, committee of {c.seats} seats at step {c.step}, seed {c.seed}"
    )
    for name in ("seed", "stake f", "k", "leads", "model", "seats", "model", "seat gain"):
        table.add_column(name, justify="left" if name == "seed" else "right")
    for run in result.runs:
        e = run.expected
        table.add_row(
            run.kind,
            _pct(run.coalition_stake),
            str(run.candidates) if run.kind == "signature" else "any",
            _pct(run.leader_share),
            _pct(e.leader_share),
            _pct(run.seat_share),
            _pct(e.seat_share),
            f"{run.seat_gain * 100:+.2f} pp",
        )
    table.caption = (
        f"{result.seconds:.1f} s. model: ideal hashes, exact; a VRF leader has one candidate "
        "whatever k is."
    )
    (console or Console()).print(table)
