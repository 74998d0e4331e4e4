"""Participation: empty blocks and block time when only part of the stake is online.

`echorand sim participation` runs the consensus simulator (the real core,
real signatures and sortition, a simulated clock and network) at a sweep of
online-stake fractions, several seeds each, and reports per point the share
of empty blocks and the effective block time, beside the whitepaper's
"Insufficient Node Participation" figures.

Offline stake is taken by account (`SimConfig.offline = "accounts"`): every
node stays up and relays, and acts only for its online accounts, so the
online fraction is met to within one account and the network never splits.
Committees are drawn by stake over all accounts, online or not.

A run stops when `rounds` rounds are committed, or at `max_time_s` of
simulated time (a stalled run). The block time of a point is its simulated
time over its committed blocks, a stalled run's unfinished round included.

Runs (variant x point x seed) are independent and run in parallel across
processes; the results do not depend on how many. A variant is the same
sweep under other rules, a transformation of the run's `SimConfig`: `plain`,
and with `--delegation` also `delegation` (`VARIANTS`). Both run on the same
seeds, networks and offline accounts; the table has one section per variant,
the JSON one object per (variant, point), its `variant` naming it.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from queue import Empty
from typing import Any

import orjson
from rich import box
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from echorand.protocol.params import Params
from echorand.sim.cluster import ClusterError
from echorand.sim.simulation import SimConfig, SimResult, run
from echorand.sim.stats import percentile

DEFAULT_POINTS = (1.0, 0.8, 0.7, 0.65, 0.6, 0.5)

PLAIN = "plain"
DELEGATION = "delegation"
DELEGATED_SHARE = 0.5
"""Under `delegation`, half of the offline accounts delegate explicitly; the fallback covers
the rest (docs/protocol.md §16)."""
VARIANTS: dict[str, Callable[[SimConfig], SimConfig]] = {
    PLAIN: lambda config: config,
    DELEGATION: lambda config: replace(config, delegate_offline=DELEGATED_SHARE, fallback=True),
}
"""Each variant of the sweep is a transformation of a run's configuration."""


@dataclass(frozen=True, slots=True)
class WhitepaperFigure:
    """One line of the whitepaper's "Network simulations suggest that" list."""

    empty_fraction: float
    block_time_s: float
    at_least: bool = False
    """"70%+ empty blocks and a 120s+ ... block generation time"."""


WHITEPAPER: dict[float, WhitepaperFigure] = {
    0.70: WhitepaperFigure(0.04, 5.5),
    0.65: WhitepaperFigure(0.16, 14.0),
    0.60: WhitepaperFigure(0.30, 32.0),
    0.50: WhitepaperFigure(0.70, 120.0, at_least=True),
}


@dataclass(frozen=True, slots=True)
class SweepConfig:
    """The sweep: which points, how many seeds, and the simulated network of every run."""

    points: tuple[float, ...] = DEFAULT_POINTS
    """Online-stake fractions."""
    seeds: int = 4
    """Runs per point, with seeds first_seed .. first_seed + seeds - 1."""
    first_seed: int = 1
    rounds: int = 20
    """Rounds a run tries to commit."""
    max_time_s: float = 600.0
    """Simulated time after which a run stops (stalled)."""
    nodes: int = 10
    accounts: int = 20
    """Accounts per node."""
    n_c: int = 100
    n_g: int = 10
    k: int = 4
    lam_ms: int = 1_000
    big_lam_ms: int = 3_000
    latency_ms: int = 100
    """Mean link latency (each link: [0.5, 1.5] x this, plus jitter)."""
    variants: tuple[str, ...] = (PLAIN,)

    def __post_init__(self) -> None:
        if not self.points:
            raise ValueError("points: at least one participation fraction is needed")
        bad = [p for p in self.points if not 0.0 < p <= 1.0]
        if bad:
            raise ValueError(f"points must be in (0, 1], got {bad}")
        for name, value in (("seeds", self.seeds), ("rounds", self.rounds)):
            if value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        if not self.max_time_s > 0:
            raise ValueError(f"max_time_s must be positive, got {self.max_time_s}")
        if self.nodes < 2 or self.accounts < 1 or self.latency_ms < 1:
            raise ValueError("need nodes >= 2, accounts >= 1 and latency_ms >= 1")
        unknown = [v for v in self.variants if v not in VARIANTS]
        if unknown or not self.variants:
            raise ValueError(f"variants must be among {', '.join(VARIANTS)}, got {unknown}")
        self.params()

    def params(self) -> Params:
        return Params(
            n_g=self.n_g, n_c=self.n_c, k=self.k, lam_ms=self.lam_ms, big_lam_ms=self.big_lam_ms
        )

    @property
    def seed_list(self) -> list[int]:
        return list(range(self.first_seed, self.first_seed + self.seeds))

    def sim_config(self, variant: str, participation: float, seed: int) -> SimConfig:
        """The configuration of one run."""
        config = SimConfig(
            nodes=self.nodes,
            accounts=self.accounts,
            rounds=self.rounds,
            seed=seed,
            participation=participation,
            offline="accounts",
            latency_ms=self.latency_ms,
            n_g=self.n_g,
            n_c=self.n_c,
            k=self.k,
            lam_ms=self.lam_ms,
            big_lam_ms=self.big_lam_ms,
            max_time_ms=round(self.max_time_s * 1_000),
        )
        return VARIANTS[variant](config)

    def to_json(self) -> dict[str, object]:
        params = self.params()
        return {
            "points": list(self.points),
            "seeds": self.seed_list,
            "rounds": self.rounds,
            "max_time_s": self.max_time_s,
            "nodes": self.nodes,
            "accounts": self.nodes * self.accounts,
            "n_c": self.n_c,
            "t_h": params.t_h,
            "n_g": self.n_g,
            "mu": params.mu,
            "lambda_s": self.lam_ms / 1_000,
            "big_lambda_s": self.big_lam_ms / 1_000,
            "latency_ms": self.latency_ms,
        }


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """What one run measured (no wall-clock time: outcomes are compared across worker counts)."""

    variant: str
    participation: float
    seed: int
    online_stake: float
    committed: int
    empty: int
    elapsed_ms: int
    """Simulated time observed: until the last round committed, or the cap if stalled."""
    stalled: bool
    decision_steps: tuple[int, ...]
    """The step of each committed block's certificate."""
    round_ms: tuple[int, ...]
    """How long each committed round took (at the node that committed last)."""
    forks: int
    bad_certificates: int


def outcome_of(variant: str, participation: float, result: SimResult) -> RunOutcome:
    """Summarise one simulation (its honest nodes agree on every committed block)."""
    committed = result.committed
    stalled = committed < result.config.rounds
    cap = result.config.max_time_ms
    elapsed = cap if stalled and cap is not None else result.sim_time_ms
    chain = max(result.chains, key=len, default=[])[:committed]
    slowest = max(
        (times[:committed] for times in result.commit_ms if len(times) >= committed),
        key=lambda times: times[-1] if times else 0,
        default=[],
    )
    starts = [0, *slowest]
    return RunOutcome(
        variant=variant,
        participation=participation,
        seed=result.config.seed,
        online_stake=result.online_stake,
        committed=committed,
        empty=sum(1 for block, _ in chain if block.is_empty),
        elapsed_ms=elapsed,
        stalled=stalled,
        decision_steps=tuple(cert.step for _, cert in chain),
        round_ms=tuple(end - start for start, end in zip(starts, slowest, strict=False)),
        forks=len(result.forks),
        bad_certificates=len(result.bad_certificates),
    )


def step_pass_probability(online: float, n_c: int, t_h: int) -> float:
    """P(the online seats of one committee weigh > t_h): seats are N_c independent draws by
    stake, so the online weight is Binomial(N_c, online)."""
    online = min(max(online, 0.0), 1.0)
    if online in (0.0, 1.0):
        return online
    log_p, log_q = math.log(online), math.log1p(-online)
    top = math.lgamma(n_c + 1)

    def term(k: int) -> float:
        return math.exp(
            top - math.lgamma(k + 1) - math.lgamma(n_c - k + 1) + k * log_p + (n_c - k) * log_q
        )

    return min(1.0, math.fsum(term(k) for k in range(t_h + 1, n_c + 1)))


@dataclass(frozen=True, slots=True)
class PointResult:
    """One point of the sweep: every seed's run at one participation, under one variant."""

    variant: str
    participation: float
    runs: tuple[RunOutcome, ...]
    mu: int
    n_c: int
    t_h: int

    @property
    def online_stake(self) -> float:
        return sum(r.online_stake for r in self.runs) / len(self.runs)

    @property
    def committed(self) -> int:
        return sum(r.committed for r in self.runs)

    @property
    def empty(self) -> int:
        return sum(r.empty for r in self.runs)

    @property
    def elapsed_s(self) -> float:
        return sum(r.elapsed_ms for r in self.runs) / 1_000

    @property
    def stalled_runs(self) -> int:
        return sum(r.stalled for r in self.runs)

    @property
    def empty_fraction(self) -> float | None:
        return self.empty / self.committed if self.committed else None

    @property
    def block_time_s(self) -> float | None:
        """Simulated seconds per committed block (None: no block at all)."""
        return self.elapsed_s / self.committed if self.committed else None

    @property
    def non_empty_block_time_s(self) -> float | None:
        """Simulated seconds per committed non-empty block (None: none)."""
        non_empty = self.committed - self.empty
        return self.elapsed_s / non_empty if non_empty else None

    @property
    def block_time_over_s(self) -> float | None:
        """With no block committed, every run's first round outlasted the cap."""
        return None if self.committed else min(r.elapsed_ms for r in self.runs) / 1_000

    def round_time_s(self, pct: float) -> float | None:
        """A percentile of the committed rounds' durations (rounds that never ended left out)."""
        value = percentile([ms for r in self.runs for ms in r.round_ms], pct)
        return None if value is None else value / 1_000

    @property
    def decided_past_mu(self) -> float | None:
        """The share of committed rounds whose certificate comes from a step after mu."""
        steps = [s for r in self.runs for s in r.decision_steps]
        return sum(s > self.mu for s in steps) / len(steps) if steps else None

    @property
    def fast_path(self) -> float | None:
        """The share of committed rounds decided by step-4 votes (graded consensus passed)."""
        steps = [s for r in self.runs for s in r.decision_steps]
        return sum(s == 4 for s in steps) / len(steps) if steps else None

    @property
    def step_pass(self) -> float:
        return step_pass_probability(self.online_stake, self.n_c, self.t_h)

    @property
    def forks(self) -> int:
        return sum(r.forks for r in self.runs)

    @property
    def bad_certificates(self) -> int:
        return sum(r.bad_certificates for r in self.runs)

    def whitepaper(self) -> WhitepaperFigure | None:
        return WHITEPAPER.get(round(self.participation, 4))

    def to_json(self) -> dict[str, object]:
        paper = self.whitepaper()
        return {
            "variant": self.variant,
            "participation": self.participation,
            "empty_fraction": self.empty_fraction,
            "block_time_s": self.block_time_s,
            "block_time_over_s": self.block_time_over_s,
            "non_empty_block_time_s": self.non_empty_block_time_s,
            "online_stake": round(self.online_stake, 4),
            "blocks": self.committed,
            "empty_blocks": self.empty,
            "runs": len(self.runs),
            "stalled_runs": self.stalled_runs,
            "simulated_s": self.elapsed_s,
            "round_time_p50_s": self.round_time_s(50),
            "round_time_p90_s": self.round_time_s(90),
            "fast_path": self.fast_path,
            "decided_past_mu": self.decided_past_mu,
            "step_pass_probability": self.step_pass,
            "forks": self.forks,
            "bad_certificates": self.bad_certificates,
            "whitepaper": None
            if paper is None
            else {
                "empty_fraction": paper.empty_fraction,
                "block_time_s": paper.block_time_s,
                "at_least": paper.at_least,
            },
        }


@dataclass(slots=True)
class SweepResult:
    """The sweep's points, keyed by variant, in the order of `config.points`."""

    config: SweepConfig
    variants: dict[str, list[PointResult]]
    jobs: int
    seconds: float
    runs: list[RunOutcome] = field(repr=False, default_factory=list)

    @property
    def points(self) -> list[PointResult]:
        return [p for points in self.variants.values() for p in points]

    def to_json(self) -> list[dict[str, object]]:
        return [p.to_json() for p in self.points]

    @property
    def safe(self) -> bool:
        return all(p.forks == 0 and p.bad_certificates == 0 for p in self.points)


# --- running ---------------------------------------------------------------------------------

Task = tuple[int, str, float, int]
"""(index, variant, participation, seed)."""


def _tasks(config: SweepConfig) -> list[Task]:
    combos = [(v, p, s) for v in config.variants for p in config.points for s in config.seed_list]
    return [(i, v, p, s) for i, (v, p, s) in enumerate(combos)]


def _run_task(config: SweepConfig, task: Task, report: Any = None) -> RunOutcome:
    """One run; `report` (a queue, or None) receives (index, rounds committed so far)."""
    index, variant, participation, seed = task
    progress = None if report is None else (lambda done: report.put((index, done)))
    result = run(config.sim_config(variant, participation, seed), progress)
    return outcome_of(variant, participation, result)


def default_jobs() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def run_sweep(
    config: SweepConfig,
    *,
    jobs: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    cluster: str | None = None,
) -> SweepResult:
    """Run every (variant, point, seed) and aggregate; `jobs` processes (1: in this process),
    or the workers of the Dask cluster at `cluster` (echorand.sim.cluster).

    `on_progress(rounds_done, rounds_total)` follows the committed rounds (a stalled run's
    missing rounds count as done when it stops; on a cluster, a run counts when it ends).
    The outcome does not depend on `jobs` nor on where the runs ran.
    """
    jobs = default_jobs() if jobs is None else jobs
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    tasks = _tasks(config)
    total = len(tasks) * config.rounds
    done = [0] * len(tasks)

    def advance(index: int, rounds: int) -> None:
        done[index] = max(done[index], min(rounds, config.rounds))
        if on_progress is not None:
            on_progress(sum(done), total)

    start = time.perf_counter()
    outcomes: list[RunOutcome | None] = [None] * len(tasks)
    if cluster is not None:
        from functools import partial

        from echorand.sim.cluster import run_on_cluster

        results, jobs = run_on_cluster(
            cluster,
            partial(_run_task, config),
            tasks,
            on_result=lambda i, _: advance(i, config.rounds),
        )
        outcomes[:] = results
    elif jobs == 1 or len(tasks) == 1:
        for task in tasks:
            queue = _Direct(advance)
            outcomes[task[0]] = _run_task(config, task, queue if on_progress else None)
            advance(task[0], config.rounds)
    else:
        _run_parallel(config, tasks, jobs, outcomes, advance, report=on_progress is not None)
    seconds = time.perf_counter() - start
    runs = [o for o in outcomes if o is not None]
    assert len(runs) == len(tasks)
    return SweepResult(config, _aggregate(config, runs), jobs, seconds, runs)


class _Direct:
    """A stand-in for a queue when the runs are in this process."""

    def __init__(self, advance: Callable[[int, int], None]) -> None:
        self.advance = advance

    def put(self, item: tuple[int, int]) -> None:
        self.advance(*item)


def _run_parallel(
    config: SweepConfig,
    tasks: list[Task],
    jobs: int,
    outcomes: list[RunOutcome | None],
    advance: Callable[[int, int], None],
    *,
    report: bool,
) -> None:
    import multiprocessing

    # Forked workers (where fork exists) need no `if __name__ == "__main__"` guard in the
    # caller's script. Every worker is forked at the first submit, before the pool's own
    # thread starts and before any progress display does (`_LazyProgress`).
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    # Longest first: the low-participation runs go on to the cap.
    ordered = sorted(tasks, key=lambda t: (t[2], t[0]))
    with ExitStack() as stack:
        queue = stack.enter_context(context.Manager()).Queue() if report else None
        pool = stack.enter_context(
            ProcessPoolExecutor(max_workers=min(jobs, len(tasks)), mp_context=context)
        )
        pending: dict[Future[RunOutcome], int] = {
            pool.submit(_run_task, config, task, queue): task[0] for task in ordered
        }
        while pending:
            finished, _ = wait(pending, timeout=0.25, return_when=FIRST_COMPLETED)
            _drain(queue, advance)
            for future in finished:
                index = pending.pop(future)
                outcomes[index] = future.result()
                advance(index, config.rounds)


def _drain(queue: Any, advance: Callable[[int, int], None]) -> None:
    if queue is None:
        return
    while True:
        try:
            advance(*queue.get_nowait())
        except Empty:
            return


def _aggregate(config: SweepConfig, runs: list[RunOutcome]) -> dict[str, list[PointResult]]:
    params = config.params()
    out: dict[str, list[PointResult]] = {}
    for variant in config.variants:
        out[variant] = [
            PointResult(
                variant,
                point,
                tuple(r for r in runs if r.variant == variant and r.participation == point),
                params.mu,
                params.n_c,
                params.t_h,
            )
            for point in config.points
        ]
    return out


# --- the command -----------------------------------------------------------------------------


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text}")
    return value


def _positive(kind: type[int] | type[float]) -> Callable[[str], Any]:
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a {kind.__name__}: {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value

    return parse


def add_participation_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `echorand sim participation`."""
    d = SweepConfig()
    parser.description = (
        "Empty blocks and block time when only part of the stake is online: the consensus "
        "simulator at a sweep of online-stake fractions, beside the whitepaper's figures."
    )
    add = parser.add_argument
    add(
        "--points",
        type=_fraction,
        nargs="+",
        default=list(d.points),
        metavar="P",
        help="online-stake fractions (default %(default)s)",
    )
    add(
        "--seeds", type=_positive(int), default=d.seeds, help="runs per point (default %(default)s)"
    )
    add("--first-seed", type=int, default=d.first_seed, help="the first run's seed (default 1)")
    add(
        "--rounds",
        type=_positive(int),
        default=d.rounds,
        help="rounds each run tries to commit (default %(default)s)",
    )
    add(
        "--max-time-s",
        type=_positive(float),
        default=d.max_time_s,
        help="simulated seconds after which a run stops, stalled (default %(default)s)",
    )
    add("--nodes", type=_positive(int), default=d.nodes, help="nodes (default %(default)s)")
    add(
        "--accounts",
        type=_positive(int),
        default=d.accounts,
        help="accounts per node (default %(default)s)",
    )
    add("--n-c", type=_positive(int), default=d.n_c, help="N_c (default %(default)s)")
    add("--n-g", type=_positive(int), default=d.n_g, help="N_g (default %(default)s)")
    add("--k", type=_positive(int), default=d.k, help="BBA loops, mu = 4 + 3k (default 4)")
    add("--lambda-ms", type=_positive(int), default=d.lam_ms, help="λ (default %(default)s)")
    add("--big-lambda-ms", type=_positive(int), default=d.big_lam_ms, help="Λ (default 3000)")
    add(
        "--latency-ms",
        type=_positive(int),
        default=d.latency_ms,
        help="mean link latency (default %(default)s)",
    )
    add(
        "--jobs",
        type=_positive(int),
        default=None,
        help="worker processes (default: the cores this process may use)",
    )
    add(
        "--cluster",
        default=None,
        metavar="ADDRESS",
        help="run on this Dask distributed cluster (tcp://host:8786) instead of local "
        "processes: the same results for the same seeds",
    )
    add(
        "--delegation",
        action="store_true",
        help="run the sweep with and without delegation (half of the offline accounts "
        "delegate explicitly, the fallback covers the rest) and plot both",
    )
    add(
        "--json",
        action="store_true",
        help="print a JSON list, one object per (variant, point), in the order of the "
        'variants (plain, then delegation) and of --points; its "variant" names the variant',
    )
    add("--plot", type=Path, default=None, metavar="FILE", help="save a PNG plot to FILE")


def config_from(args: argparse.Namespace) -> SweepConfig:
    return SweepConfig(
        points=tuple(args.points),
        seeds=args.seeds,
        first_seed=args.first_seed,
        rounds=args.rounds,
        max_time_s=args.max_time_s,
        nodes=args.nodes,
        accounts=args.accounts,
        n_c=args.n_c,
        n_g=args.n_g,
        k=args.k,
        lam_ms=args.lambda_ms,
        big_lam_ms=args.big_lambda_ms,
        latency_ms=args.latency_ms,
        variants=(PLAIN, DELEGATION) if args.delegation else (PLAIN,),
    )


def run_participation(args: argparse.Namespace, plot: Callable[[SweepResult, Path], Path]) -> int:
    """`echorand sim participation`: 0 when no run forked or held a bad certificate, else 1.
    Plots with `plot` (`participation_plots.save_plot`, which the CLI passes: matplotlib
    only when asked)."""
    err = Console(stderr=True)
    try:
        config = config_from(args)
    except ValueError as e:
        err.print(f"[red]echorand sim participation: error:[/] {e}")
        return 2
    try:
        result = _run_with_progress(
            config, args.jobs, err, show=not args.json, cluster=args.cluster
        )
    except ClusterError as e:
        err.print(f"[red]echorand sim participation: error:[/] {e}")
        return 2
    if args.json:
        print(orjson.dumps(result.to_json()).decode())
    else:
        print_result(result)
    if args.plot is not None:
        err.print(f"saved {plot(result, args.plot)}")
    return 0 if result.safe else 1


def _run_with_progress(
    config: SweepConfig,
    jobs: int | None,
    console: Console,
    *,
    show: bool,
    cluster: str | None = None,
) -> SweepResult:
    if not show:
        return run_sweep(config, jobs=jobs, cluster=cluster)
    columns = (
        TextColumn("rounds"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    progress = _LazyProgress(Progress(*columns, console=console, transient=True))
    try:
        return run_sweep(config, jobs=jobs, on_progress=progress.update, cluster=cluster)
    finally:
        progress.stop()


class _LazyProgress:
    """A progress bar whose display (a thread) starts at the first update, once the worker
    processes exist."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task: TaskID | None = None

    def update(self, done: int, total: int) -> None:
        if self.task is None:
            self.progress.start()
            self.task = self.progress.add_task("rounds", total=total)
        self.progress.update(self.task, completed=done, total=total)

    def stop(self) -> None:
        if self.task is not None:
            self.progress.stop()


def _pct(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0%}" if value >= 0.1 or value == 0 else f"{value:.1%}"


def _secs(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def block_time_text(point: PointResult) -> str:
    if point.block_time_s is not None:
        return _secs(point.block_time_s)
    return f"> {point.block_time_over_s:.0f}"


def whitepaper_text(point: PointResult) -> str:
    paper = point.whitepaper()
    if paper is None:
        return ""
    plus = "+" if paper.at_least else ""
    return f"{paper.empty_fraction:.0%}{plus}, {paper.block_time_s:g}{plus} s"


def _table(title: str | None, columns: Sequence[str]) -> Table:
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for name in columns:
        table.add_column(name, justify="right")
    return table


def print_result(result: SweepResult, console: Console | None = None) -> None:
    """Per variant: the blocks beside the whitepaper's figures, then how the rounds ended."""
    c = result.config
    params = c.params()
    console = console or Console()
    for variant, points in result.variants.items():
        title = (
            f"participation ({variant}): N_c={c.n_c}, t_h={params.t_h}, λ={c.lam_ms / 1000:g} s, "
            f"Λ={c.big_lam_ms / 1000:g} s, {c.nodes * c.accounts} accounts on {c.nodes} nodes, "
            f"{c.seeds} x {c.rounds} rounds, cap {c.max_time_s:g} s a run"
        )
        blocks = _table(
            title,
            ("online", "blocks", "empty", "s/block", "s/non-empty", "stalled", "whitepaper"),
        )
        rounds = _table(
            None, ("online", "round s p50", "p90", "by step 4", "after μ", "P(step passes)")
        )
        for p in points:
            blocks.add_row(
                f"{p.online_stake:.1%}",
                str(p.committed),
                _pct(p.empty_fraction),
                block_time_text(p),
                _secs(p.non_empty_block_time_s) if p.committed else block_time_text(p),
                f"{p.stalled_runs}/{len(p.runs)}",
                whitepaper_text(p),
            )
            rounds.add_row(
                f"{p.online_stake:.1%}",
                _secs(p.round_time_s(50)),
                _secs(p.round_time_s(90)),
                _pct(p.fast_path),
                _pct(p.decided_past_mu),
                f"{p.step_pass:.3f}",
            )
        blocks.caption = (
            "s/block: simulated seconds per committed block; s/non-empty: per non-empty one; "
            "stalled: runs stopped at the cap"
        )
        rounds.caption = (
            f"rounds that ended: their length, and the share decided by step-4 votes and after "
            f"μ = {params.mu}; P(step passes): a committee's online seats > t_h.\n"
            f"{result.seconds:.0f} s on {result.jobs} worker(s); "
            f"forks: {sum(p.forks for p in points)}, "
            f"bad certificates: {sum(p.bad_certificates for p in points)}"
        )
        console.print(blocks)
        console.print(rounds)
