"""The plot of the participation study, as a PNG file (matplotlib's Agg canvas, no display).

Two panels against the online stake: the share of empty blocks, and the block
time (log scale), one line per variant, the whitepaper's figures as markers.
A point where no block was committed is drawn at its lower bound, hollow. The
dotted line is the least share of empty blocks that thresholds of `t_h` seats
allow: a non-empty block needs step 2 to pass, which it does with probability
`P(Binomial(N_c, online) > t_h)`.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from echorand.tools.studies.participation import (
    WHITEPAPER,
    PointResult,
    SweepResult,
    step_pass_probability,
)

COLORS = ("#5c6700", "#8c2d04", "#1f5f8b", "#6a3d9a")
WHITEPAPER_COLOR = "#999999"
BOUND_COLOR = "#444444"
SIZE = (10.0, 4.2)
DPI = 100


def _whitepaper(ax: Axes, values: list[float]) -> None:
    """The whitepaper's figures: squares, and a hollow triangle where it says "or more"."""
    xs = [p * 100 for p in WHITEPAPER]
    ax.plot(xs, values, "--", color=WHITEPAPER_COLOR)
    exact = [
        (x, v) for x, v, f in zip(xs, values, WHITEPAPER.values(), strict=True) if not f.at_least
    ]
    more = [(x, v) for x, v, f in zip(xs, values, WHITEPAPER.values(), strict=True) if f.at_least]
    ax.plot(*zip(*exact, strict=True), "s", color=WHITEPAPER_COLOR, label="whitepaper")
    if more:
        ax.plot(
            *zip(*more, strict=True),
            "^",
            color=WHITEPAPER_COLOR,
            markerfacecolor="none",
            label="whitepaper: or more",
        )


def _empty_panel(ax: Axes, variants: dict[str, list[PointResult]], n_c: int, t_h: int) -> None:
    for color, (variant, points) in zip(COLORS, variants.items(), strict=False):
        shown = [p for p in points if p.empty_fraction is not None]
        ax.plot(
            [p.online_stake * 100 for p in shown],
            [p.empty_fraction * 100 for p in shown],  # type: ignore[operator]
            "o-",
            color=color,
            label=f"echorand ({variant})",
        )
    _whitepaper(ax, [f.empty_fraction * 100 for f in WHITEPAPER.values()])
    grid = [0.5 + i / 200 for i in range(101)]
    ax.plot(
        [p * 100 for p in grid],
        [(1 - step_pass_probability(p, n_c, t_h)) * 100 for p in grid],
        ":",
        color=BOUND_COLOR,
        label="1 - P(step > t_h): at least this many empty",
    )
    ax.set_xlabel("online stake (%)")
    ax.set_ylabel("empty blocks (%)")
    ax.set_ylim(-3, 103)
    ax.set_title("Share of empty blocks", fontsize=10)


def _time_panel(ax: Axes, variants: dict[str, list[PointResult]]) -> None:
    for color, (variant, points) in zip(COLORS, variants.items(), strict=False):
        timed = [p for p in points if p.block_time_s is not None]
        ax.plot(
            [p.online_stake * 100 for p in timed],
            [p.block_time_s for p in timed],
            "o-",
            color=color,
            label=f"echorand ({variant})",
        )
        bounds = [p for p in points if p.block_time_over_s is not None]
        if bounds:
            ax.plot(
                [p.online_stake * 100 for p in bounds],
                [p.block_time_over_s for p in bounds],
                "^",
                color=color,
                markerfacecolor="none",
                label="no block in any run: over the cap",
            )
    _whitepaper(ax, [f.block_time_s for f in WHITEPAPER.values()])
    ax.set_yscale("log")
    ax.set_xlabel("online stake (%)")
    ax.set_ylabel("simulated seconds per block")
    ax.set_title("Effective block time", fontsize=10)


def figure(result: SweepResult) -> Figure:
    """The two panels, one line per variant of `result`, on an Agg canvas."""
    c = result.config
    params = c.params()
    fig = Figure(figsize=SIZE, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    left, right = fig.subplots(1, 2)
    _empty_panel(left, result.variants, c.n_c, params.t_h)
    _time_panel(right, result.variants)
    for ax in (left, right):
        ax.invert_xaxis()
        ax.grid(alpha=0.3)
    left.legend(fontsize=8, loc="upper left")
    right.legend(fontsize=8, loc="center left")
    fig.suptitle(
        f"Participation: N_c={c.n_c}, t_h={params.t_h}, λ={c.lam_ms / 1000:g} s, "
        f"Λ={c.big_lam_ms / 1000:g} s, {c.nodes * c.accounts} accounts, "
        f"{c.seeds} seeds x {c.rounds} rounds, cap {c.max_time_s:g} s a run",
        fontsize=10,
    )
    return fig


def save_plot(result: SweepResult, path: Path) -> Path:
    """Write the two panels to `path` (PNG); return it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    figure(result).savefig(path, format="png")
    return path
