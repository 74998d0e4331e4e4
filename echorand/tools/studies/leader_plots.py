"""The plots of the leader-order study, as PNG files (matplotlib, no display needed).

Four figures, as in seed 002: the validator-by-position heatmap, the
histogram of its counts, the blocks per author, and the blocks waited for an
honest block. The colours are the study's.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.colors import LinearSegmentedColormap
from matplotlib.figure import Figure

from echorand.tools.studies.leader import LeaderResult

CMAP = LinearSegmentedColormap.from_list("exonum", ["#5c6700", "#bccc29", "#f5ff9a"])
COLOR = "#d0e01b"
BYZANTINE = "#8c2d04"
SIZE = (6.0, 4.0)
DPI = 100


def _subtitle(result: LeaderResult) -> str:
    return (
        f"N={result.validators}, F={result.byzantine}, {result.blocks:,} blocks, {result.scenario}"
    )


def heatmap(ax: Axes, result: LeaderResult) -> None:
    image = ax.imshow(result.counts, cmap=CMAP, aspect="auto", interpolation="nearest")
    ax.figure.colorbar(image, ax=ax, label="heights")
    ax.set_xlabel("Position after shuffling")
    ax.set_ylabel("Validator id")
    ax.set_title("Validator by position\n" + _subtitle(result), fontsize=10)


def counts_histogram(ax: Axes, result: LeaderResult) -> None:
    ax.hist([c for row in result.counts for c in row], bins=20, color=COLOR, edgecolor="#5c6700")
    ax.set_xlabel("Count of matches: validator vs position")
    ax.set_ylabel("Frequency")
    ax.set_title(
        f"How often a validator falls into a position (std {result.position_std:,.2f})\n"
        + _subtitle(result),
        fontsize=10,
    )


def authors_bars(ax: Axes, result: LeaderResult) -> None:
    ids = range(result.validators)
    colors = [BYZANTINE if v < result.byzantine else COLOR for v in ids]
    ax.bar(ids, result.author_counts, color=colors)
    ax.set_xlabel(
        f"Validator id (0 .. {result.byzantine - 1} Byzantine, dark)"
        if result.byzantine
        else "Validator id"
    )
    ax.set_ylabel("Blocks authored")
    ax.set_title(
        f"How often a validator authors a block ({result.honest_share:.2%} honest)\n"
        + _subtitle(result),
        fontsize=10,
    )


def wait_bars(ax: Axes, result: LeaderResult) -> None:
    waits = sorted(result.wait_histogram.items())
    bars = ax.bar([w for w, _ in waits], [c for _, c in waits], color=COLOR, width=0.8)
    ax.bar_label(bars, labels=[f"{c:,}" for _, c in waits], fontsize=8)
    ax.margins(y=0.12)
    ax.set_xticks([w for w, _ in waits])
    ax.set_xlabel("Blocks to wait")
    ax.set_ylabel("Heights")
    ax.set_title(
        f"How long until an honest block (at most {result.max_wait})\n" + _subtitle(result),
        fontsize=10,
    )


PLOTS = {
    "positions": heatmap,
    "counts": counts_histogram,
    "authors": authors_bars,
    "wait": wait_bars,
}


def save_plots(result: LeaderResult, directory: Path) -> list[Path]:
    """Write `leader-<scenario>-<plot>.png` for each plot into `directory`; return the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, draw in PLOTS.items():
        fig = Figure(figsize=SIZE, dpi=DPI, layout="constrained")
        draw(fig.add_subplot(), result)
        path = directory / f"leader-{result.scenario}-{name}.png"
        fig.savefig(path)
        paths.append(path)
    return paths
