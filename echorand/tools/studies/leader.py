"""The round-robin leader-order study of seed 002, behind `echorand sim leader`.

N validators, the first F Byzantine. After each block its author is locked
for F heights; the others are ordered by PROTOCOL §7 (the T-th permutation,
T = int_be(H(u32be(h))) mod (N - F)!). The study asks who authors the blocks
when every validator is quick (the first of the order), and when honest
validators need K rounds while Byzantine ones answer at once (the first
Byzantine validator within the first K + 1 positions, else the first of the
order); and how many blocks one waits for an honest block (at most F + 1).

The loop runs in the native core (`echorand._native.LeaderStudy`); this
module adds the figures, the table, the JSON and the plots.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import orjson
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from echorand._native import LeaderStudy
from echorand.protocol.leader import max_faulty

SEGMENT = 1_000_000
"""Blocks per native call: the progress bar moves (and Ctrl-C is seen) between calls."""

FIRST = 10
"""How many first authors and first waits are reported (as in the study)."""


@dataclass(frozen=True, slots=True)
class SeedFigures:
    """What seed 002 printed for N = 16, F = 5 and 10 000 000 blocks."""

    honest_percent: float
    position_std: float
    first_authors: tuple[int, ...]
    first_waits: tuple[int, ...]
    dropped_tail: int


SEED_002_PARAMETERS = (16, 5, 10_000_000)
SEED_002: dict[int | None, SeedFigures] = {
    None: SeedFigures(
        68.76, 835.97, (0, 1, 2, 3, 4, 6, 14, 10, 5, 1), (5, 4, 3, 2, 1, 1, 1, 1, 2, 1), 2
    ),
    5: SeedFigures(
        31.89, 225_896.63, (0, 1, 2, 3, 4, 6, 14, 10, 2, 1), (5, 4, 3, 2, 1, 1, 1, 5, 4, 3), 4
    ),
}


@dataclass(frozen=True, slots=True)
class LeaderResult:
    """The figures of one run of the experiment."""

    validators: int
    byzantine: int
    blocks: int
    slow_honest: int | None
    seed: bytes | None
    counts: list[list[int]]
    author_counts: list[int]
    first_authors: list[int]
    first_waits: list[int | None]
    wait_histogram: dict[int, int]
    dropped_tail: int
    seconds: float

    @property
    def scenario(self) -> str:
        name = "quick" if self.slow_honest is None else f"slow-honest-{self.slow_honest}"
        return name + ("-seeded" if self.seed is not None else "")

    @property
    def honest_share(self) -> float:
        """The fraction of blocks with an honest author (id >= F)."""
        return sum(self.author_counts[self.byzantine :]) / self.blocks if self.blocks else 0.0

    @property
    def position_mean(self) -> float:
        """The mean of counts[v][p] (= blocks / N)."""
        cells = [c for row in self.counts for c in row]
        return sum(cells) / len(cells)

    @property
    def position_std(self) -> float:
        """The population standard deviation of counts[v][p] (numpy's std), from exact sums."""
        cells = [c for row in self.counts for c in row]
        k, s, sq = len(cells), sum(cells), sum(c * c for c in cells)
        return math.sqrt(k * sq - s * s) / k

    @property
    def max_wait(self) -> int | None:
        return max(self.wait_histogram, default=None)

    def seed_figures(self) -> SeedFigures | None:
        """The seed's figures when this run repeats one of its experiments."""
        params = (self.validators, self.byzantine, self.blocks)
        if params != SEED_002_PARAMETERS or self.seed is not None:
            return None
        return SEED_002.get(self.slow_honest)

    def to_json(self) -> dict[str, object]:
        return {
            "honest_share": self.honest_share,
            "position_mean": self.position_mean,
            "position_std": self.position_std,
            "first_authors": self.first_authors,
            "wait_histogram": self.wait_histogram,
            "max_wait": self.max_wait,
            "validators": self.validators,
            "byzantine": self.byzantine,
            "blocks": self.blocks,
            "slow_honest": self.slow_honest,
            "seed": self.seed.hex() if self.seed is not None else None,
            "first_waits": self.first_waits,
            "dropped_tail": self.dropped_tail,
            "author_counts": self.author_counts,
            "position_counts": self.counts,
            "seconds": self.seconds,
        }


def first_waits(authors: bytes, byzantine: int, count: int = FIRST) -> list[int | None]:
    """The blocks from each of the first `count` heights to the next honest block (None: none)."""
    waits: list[int | None] = []
    for h in range(min(count, len(authors))):
        later = (j for j in range(h + 1, len(authors)) if authors[j] >= byzantine)
        nxt = next(later, None)
        waits.append(None if nxt is None else nxt - h)
    return waits


def run_experiment(
    validators: int,
    byzantine: int,
    blocks: int,
    *,
    slow_honest: int | None = None,
    seed: bytes | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> LeaderResult:
    """Run the study's experiment natively, `SEGMENT` blocks per call.

    `on_progress(done)` is called after each segment. The first FIRST + F + 1
    authors are kept: every wait is at most F + 1 blocks.
    """
    if blocks < 0:
        raise ValueError(f"blocks must not be negative, got {blocks}")
    study = LeaderStudy(validators, byzantine, slow_honest=slow_honest, seed=seed)
    keep = FIRST + byzantine + 1
    head = b""
    start = time.perf_counter()
    while study.height < blocks:
        authors = study.run(min(SEGMENT, blocks - study.height))
        if len(head) < keep:
            head += authors[: keep - len(head)]
        if on_progress is not None:
            on_progress(study.height)
    seconds = time.perf_counter() - start
    return LeaderResult(
        validators=validators,
        byzantine=byzantine,
        blocks=blocks,
        slow_honest=slow_honest,
        seed=seed,
        counts=study.counts,
        author_counts=study.author_counts,
        first_authors=list(head[:FIRST]),
        first_waits=first_waits(head, byzantine),
        wait_histogram=study.wait_histogram,
        dropped_tail=study.dropped_tail,
        seconds=seconds,
    )


# --- command line -------------------------------------------------------------------------


def _seed_arg(text: str) -> bytes:
    try:
        seed = bytes.fromhex(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"Q[0] must be hex, got {text!r}") from None
    if len(seed) != 32:
        raise argparse.ArgumentTypeError(f"Q[0] must be 32 bytes (64 hex digits), got {len(seed)}")
    return seed


def add_leader_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `echorand sim leader`."""
    parser.description = (
        "The round-robin leader-order study of seed 002: who authors the blocks when the "
        "authors of the last F blocks are locked and the others are permuted by PROTOCOL §7."
    )
    parser.add_argument("--validators", type=int, default=16, help="N (default 16)")
    parser.add_argument(
        "--byzantine",
        type=int,
        default=None,
        help="F: validators 0 .. F-1 are Byzantine, and each author is locked for F blocks "
        "(default (N - 1) // 3)",
    )
    parser.add_argument(
        "--blocks", type=int, default=10_000_000, help="heights to run (default 10 000 000)"
    )
    parser.add_argument(
        "--slow-honest",
        type=int,
        default=None,
        metavar="K",
        help="honest validators need K rounds: the first Byzantine validator within the "
        "first K + 1 positions authors the block (the study's second scenario: K = 5)",
    )
    parser.add_argument(
        "--seeded",
        type=_seed_arg,
        nargs="?",
        const=bytes(32),
        default=None,
        metavar="Q0",
        help="the seeded variant: T = H(Q[r-1] || u64be(r)), Q[r] = H(Q[r-1] || u64be(r)) "
        "from Q[0] (64 hex digits, default zeros)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--plot",
        type=Path,
        default=None,
        metavar="DIR",
        help="save the heatmap and histograms as PNG files in DIR",
    )


def run_leader(args: argparse.Namespace, plot: Callable[[LeaderResult, Path], list[Path]]) -> int:
    """`echorand sim leader`: run, then print the table or the JSON, and plot with `plot`
    (`leader_plots.save_plots`, which the CLI passes: matplotlib only when asked)."""
    byzantine = max_faulty(args.validators) if args.byzantine is None else args.byzantine
    err = Console(stderr=True)
    try:
        show = not args.json and args.blocks >= 2 * SEGMENT
        result = _run_with_progress(args, byzantine, show=show)
    except ValueError as e:
        err.print(f"[red]echorand sim leader: error:[/] {e}")
        return 2
    if args.json:
        print(orjson.dumps(result.to_json(), option=orjson.OPT_NON_STR_KEYS).decode())
    else:
        print_result(result)
    if args.plot is not None:
        for path in plot(result, args.plot):
            err.print(f"saved {path}")
    return 0


def _run_with_progress(args: argparse.Namespace, byzantine: int, *, show: bool) -> LeaderResult:
    options = {"slow_honest": args.slow_honest, "seed": args.seeded}
    if not show:
        return run_experiment(args.validators, byzantine, args.blocks, **options)
    columns = (
        TextColumn("blocks"),
        BarColumn(),
        TextColumn("{task.completed:,}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task("blocks", total=args.blocks)
        return run_experiment(
            args.validators,
            byzantine,
            args.blocks,
            on_progress=lambda done: progress.update(task, completed=done),
            **options,
        )


def _fmt_list(values: list[int | None] | tuple[int, ...]) -> str:
    return " ".join("-" if v is None else str(v) for v in values)


def print_result(result: LeaderResult, console: Console | None = None) -> None:
    """The figures as a table, beside the seed's when the run repeats its experiment."""
    seed = result.seed_figures()
    table = Table(
        title=f"leader order, {result.scenario}: N={result.validators}, "
        f"F={result.byzantine}, {result.blocks:,} blocks"
    )
    table.add_column("figure")
    table.add_column("ours", justify="right")
    if seed is not None:
        table.add_column("seed 002", justify="right")
    share = result.honest_share * 100
    rows = [
        ("honest blocks", f"{share:.2f} %", seed and f"{seed.honest_percent:.2f} %"),
        ("Byzantine blocks", f"{100 - share:.2f} %", seed and f"{100 - seed.honest_percent:.2f} %"),
        ("validator-by-position mean", f"{result.position_mean:,.2f}", seed and "625000"),
        (
            "validator-by-position std",
            f"{result.position_std:,.2f}",
            seed and f"{seed.position_std:,.2f}",
        ),
        (
            "first ten authors",
            _fmt_list(result.first_authors),
            seed and _fmt_list(seed.first_authors),
        ),
        (
            "wait of the first ten heights",
            _fmt_list(result.first_waits),
            seed and _fmt_list(seed.first_waits),
        ),
        (
            "heights with no later honest block",
            str(result.dropped_tail),
            seed and str(seed.dropped_tail),
        ),
        ("longest wait for an honest block", str(result.max_wait), seed and "at most F + 1 = 6"),
    ]
    rows += [
        (f"  waited {w} block{'s' if w > 1 else ''}", f"{c:,}", seed and "")
        for w, c in sorted(result.wait_histogram.items())
    ]
    for name, ours, theirs in rows:
        table.add_row(name, ours, *([theirs or ""] if seed is not None else []))
    per_block = result.seconds / max(result.blocks, 1) * 1e9
    table.caption = f"{result.seconds:.2f} s ({per_block:.0f} ns a block)"
    (console or Console()).print(table)
