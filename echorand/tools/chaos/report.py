"""The report of a chaos run: a table (rich), one JSON object, and the timeline plot.

The plot follows Jepsen's timeline and latency plots, sharing one time axis: each node's
tip round; the faults, one row per node (a partition's first side full, its other side
light, a bridge node hatched; a cross where a node exited on its own); every client
request at its start time and latency, coloured by its answer. Fault windows are shaded
in the first and last panels in their kind's colour.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from echorand.tools.chaos.history import (
    ACK,
    ERROR,
    HEAL,
    REFUSED,
    START,
    TIMEOUT,
    FaultEvent,
    History,
)

FAULT_COLORS = {
    "partition": "#d62728",
    "kill": "#7f7f7f",
    "pause": "#9467bd",
    "slow": "#ff7f0e",
    "disk": "#8c564b",
}
OUTCOME_COLORS = {ACK: "#2ca02c", REFUSED: "#ff7f0e", TIMEOUT: "#d62728", ERROR: "#7f7f7f"}
NODE_COLORS = ("#1f77b4", "#2ca02c", "#17becf", "#bcbd22", "#e377c2", "#8c564b", "#9467bd")
SIZE = (12.0, 8.0)
DPI = 100


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def _measured(rec: dict[str, Any]) -> str:
    """ "31 heals", or "14 of 31 heals" when some node never committed after the others."""
    measured = rec.get("measured", rec["heals"])
    if measured == rec["heals"]:
        return f"{rec['heals']} heals"
    return f"{measured} of {rec['heals']} heals (after the others a node never committed)"


def rows(summary: dict[str, Any]) -> list[tuple[str, str]]:
    """The table's rows: (what, value)."""
    tx = summary["transactions"]
    blocks = summary["blocks"]
    forks = summary["forks"]
    rec = summary["recovery_s"]
    faults = ", ".join(f"{kind} {n}" for kind, n in sorted(summary["faults"].items())) or "none"
    outcomes = tx["outcomes"]
    verdict = "valid" if summary["valid"] else f"INVALID: {len(summary['violations'])} violation(s)"
    reported = forks["reported_by_nodes"]
    return [
        ("checker", verdict),
        ("seed", str(summary["seed"])),
        ("nodes / seconds of faults", f"{summary['nodes']} / {summary['duration']:g}"),
        ("faults injected", faults),
        ("rounds", f"{summary['rounds']:,}"),
        (
            "blocks final / tentative / empty",
            f"{blocks['final']:,} / {blocks['tentative']:,} / {blocks['empty']:,}",
        ),
        (
            "transactions submitted / acknowledged / committed",
            f"{tx['submitted']:,} / {tx['acknowledged']:,} / {tx['committed']:,}",
        ),
        (
            "lost / duplicated / refused later",
            f"{tx['lost']} / {tx['duplicated']} / {tx['refused_later']}",
        ),
        (
            "requests: ack / refused / timeout / error",
            " / ".join(f"{outcomes.get(o, 0):,}" for o in (ACK, REFUSED, TIMEOUT, ERROR))
            + f" ({tx['resubmissions']:,} resubmissions)",
        ),
        (
            "forks detected / resolved",
            f"{forks['detected']} / {forks['resolved']}"
            + ("" if reported is None else f" (nodes report {reported})"),
        ),
        (
            "node exits: clean on a full disk / crashes",
            f"{summary['exits']['disk_full_stops']} / {summary['exits']['crashes']}",
        ),
        (
            "recovery after a heal: max / p50",
            f"{_seconds(rec['max'])} / {_seconds(rec['p50'])} over {_measured(rec)}",
        ),
    ]


def print_report(summary: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="echorand chaos", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    for what, value in rows(summary):
        table.add_row(what, value)
    console = Console()
    console.print(table)
    if "slow" in summary.get("nemesis", ()) and summary.get("link_emulation"):
        console.print(f"[dim]{summary['link_emulation']}[/dim]", highlight=False)
    for line in summary["violations"]:
        console.print(f"[red]violation:[/red] {line}", highlight=False)


def markdown_table(summary: dict[str, Any]) -> str:
    """The same rows as a Markdown table (for docs/reliability.md)."""
    lines = ["| what | value |", "|---|---|"]
    lines += [f"| {what} | {value} |" for what, value in rows(summary)]
    return "\n".join(lines) + "\n"


# --- the plot ---------------------------------------------------------------------------


def _windows(history: History) -> list[tuple[float, float, FaultEvent]]:
    """(start, end, start event) of every fault; one cut short by the run's end ends there."""
    open_faults: dict[tuple[str, str], tuple[float, FaultEvent]] = {}
    out = []
    for f in history.faults:
        key = (f.kind, f.detail)
        if f.action == START:
            open_faults[key] = (f.t, f)
        elif f.action == HEAL and key in open_faults:
            t, event = open_faults.pop(key)
            out.append((t, f.t, event))
    out += [(t, history.end, event) for t, event in open_faults.values()]
    return sorted(out, key=lambda w: w[0])


def _bars(event: FaultEvent, nodes: int) -> list[tuple[int, float, str]]:
    """(node, alpha, hatch) of each node a fault acts on: a partition's first side (or its
    isolated node) full, the other sides lighter, a bridge node hatched."""
    if event.kind != "partition":
        return [(k, 0.9, "") for k in event.nodes]
    if not event.sides:
        return [(k, 0.5, "") for k in range(nodes)]
    bars = [(k, 0.9 if i == 0 else 0.4, "") for i, side in enumerate(event.sides) for k in side]
    bars += [(k, 0.9, "////") for k in event.nodes if all(k not in side for side in event.sides)]
    return bars


def _tips_panel(ax: Axes, history: History) -> None:
    tips: dict[int, list[tuple[float, int]]] = defaultdict(list)
    for s in history.samples:
        if s.tip is not None:
            tips[s.node].append((s.t, s.tip))
    for k in range(history.nodes):
        points = tips.get(k, [])
        if points:
            xs, ys = zip(*points, strict=True)
            ax.step(
                [*xs, history.end],
                [*ys, ys[-1]],
                where="post",
                color=NODE_COLORS[k % len(NODE_COLORS)],
                lw=1.2,
                label=f"node {k}",
            )
    ax.set_ylabel("tip round")
    ax.set_ylim(bottom=0)


def _faults_panel(ax: Axes, history: History, windows: list) -> None:
    for start, end, event in windows:
        color = FAULT_COLORS.get(event.kind, "#cccccc")
        for k, alpha, hatch in _bars(event, history.nodes):
            ax.broken_barh(
                [(start, end - start)], (k - 0.4, 0.8), facecolors=color, alpha=alpha,
                hatch=hatch, edgecolor="white" if hatch else color, lw=0,
            )  # fmt: skip
    for e in history.exits:
        ax.plot([e.t], [e.node], "x", color="black", ms=6)
    ax.set_ylim(history.nodes - 0.5, -0.5)
    ax.set_yticks(range(history.nodes), [f"node {k}" for k in range(history.nodes)])
    ax.tick_params(axis="y", labelsize=7)
    ax.set_ylabel("faults")


def _legend(ax: Axes, windows: list) -> None:
    """The nodes' lines and the fault kinds, in the tips panel's lower right."""
    handles, _ = ax.get_legend_handles_labels()
    kinds = sorted({event.kind for _, _, event in windows})
    handles += [Patch(color=FAULT_COLORS[k], alpha=0.8, label=k) for k in kinds]
    handles.append(Line2D([], [], marker="x", ls="", color="black", label="node exited"))
    ax.legend(handles=handles, loc="lower right", fontsize=7, ncol=2)


def _latency_panel(ax: Axes, history: History) -> None:
    for outcome in (ACK, REFUSED, TIMEOUT, ERROR):
        ops = [op for op in history.ops if op.outcome == outcome]
        if ops:
            ax.scatter(
                [op.start for op in ops],
                [max(1.0, (op.end - op.start) * 1000) for op in ops],
                s=3,
                color=OUTCOME_COLORS[outcome],
                label=f"{outcome} ({len(ops):,})",
                alpha=0.6,
                lw=0,
            )
    ax.set_yscale("log")
    ax.set_ylabel("request latency (ms)")
    ax.set_xlabel("seconds since the load started")
    ax.legend(loc="upper left", fontsize=7, markerscale=3)


def plot(history: History, path: Path, title: str) -> None:
    """Write the timeline PNG of a run."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=SIZE, dpi=DPI)
    FigureCanvasAgg(fig)
    tips, faults, latency = fig.subplots(
        3, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1.4, 2]}
    )
    windows = _windows(history)
    for ax in (tips, latency):
        for start, end, event in windows:
            color = FAULT_COLORS.get(event.kind, "#cccccc")
            ax.axvspan(start, end, color=color, alpha=0.12, lw=0)
    _tips_panel(tips, history)
    _faults_panel(faults, history, windows)
    _latency_panel(latency, history)
    _legend(tips, windows)
    tips.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
