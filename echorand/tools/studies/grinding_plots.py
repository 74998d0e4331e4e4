"""The figure of the seed-grinding study, as a PNG file (matplotlib's Agg canvas, no display).

Two panels against k, the signatures a coalition leader tries (log scale):
the coalition's share of leaderships, and its share of committee seats. One
colour per coalition stake f: Ed25519 seeds measured (dots, solid) and the
exact model (dashed); VRF seeds measured (a cross at k = 1, and a dotted
line across: a VRF leader has one candidate whatever k is); f itself grey.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from echorand.tools.studies.grinding import GrindingResult, GrindingRun

COLORS = ("#1f5f8b", "#8c2d04", "#5c6700", "#6a3d9a", "#b15928")
STAKE_COLOR = "#999999"
SIZE = (10.0, 4.2)
DPI = 100


def _panel(ax: Axes, result: GrindingResult, seats: bool) -> None:
    ks = sorted(set(result.config.candidates))
    for color, f in zip(COLORS, result.config.fractions, strict=False):
        runs = [r for r in result.runs if r.fraction == f]
        sig = sorted((r for r in runs if r.kind == "signature"), key=lambda r: r.candidates)
        vrf = [r for r in runs if r.kind == "vrf"]
        stake = runs[0].coalition_stake * 100 if runs else f * 100

        def share(r: GrindingRun) -> float:
            return (r.seat_share if seats else r.leader_share) * 100

        def model(r: GrindingRun) -> float:
            e = r.expected
            return (e.seat_share if seats else e.leader_share) * 100

        if sig:
            xs = [r.candidates for r in sig]
            ax.plot(xs, [share(r) for r in sig], "o-", color=color, label=f"f = {stake:.1f} %")
            ax.plot(xs, [model(r) for r in sig], "--", color=color, alpha=0.7)
        for r in vrf:
            ax.plot([1], [share(r)], "x", color=color, markersize=9)
            ax.plot([min(ks), max(ks)], [share(r)] * 2, ":", color=color)
        ax.plot([min(ks), max(ks)], [stake, stake], "-", color=STAKE_COLOR, linewidth=0.8)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("k: signatures a coalition leader tries")
    ax.set_ylabel("coalition's share (%)")
    what = "committee seats" if seats else "leaderships"
    ax.set_title(f"Share of {what}", fontsize=10)
    ax.grid(True, alpha=0.3)


def figure(result: GrindingResult) -> Figure:
    fig = Figure(figsize=SIZE, dpi=DPI)
    FigureCanvasAgg(fig)
    left, right = fig.subplots(1, 2)
    _panel(left, result, seats=False)
    _panel(right, result, seats=True)
    left.legend(fontsize=8, title="Ed25519 seeds (dashed: model)", title_fontsize=8)
    c = result.config
    fig.suptitle(
        f"Seed grinding, objective {c.objective}: {c.rounds} rounds a run, "
        f"{c.seats} seats at step {c.step}; x and dotted: VRF seeds",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


def save_plot(result: GrindingResult, path: Path) -> Path:
    """Write the figure to `path` (a PNG file; parent folders are made)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    figure(result).savefig(path, format="png")
    return path
