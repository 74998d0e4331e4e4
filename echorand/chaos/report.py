"""The report of a chaos run: a table (rich), one JSON object, and the timeline plot.

The plot follows Jepsen's timeline and latency plots: on top, each node's tip round over
time, with every fault's window shaded in its kind's colour and labelled with what it did
(node exits are crosses); below, every client request at its start time and latency,
coloured by its answer.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from echorand.chaos.history import ACK, ERROR, HEAL, REFUSED, START, TIMEOUT, History

FAULT_COLORS = {
    "partition": "#d62728",
    "kill": "#7f7f7f",
    "pause": "#9467bd",
    "slow": "#ff7f0e",
    "disk": "#8c564b",
}
OUTCOME_COLORS = {ACK: "#2ca02c", REFUSED: "#ff7f0e", TIMEOUT: "#d62728", ERROR: "#7f7f7f"}
NODE_COLORS = ("#1f77b4", "#2ca02c", "#17becf", "#bcbd22", "#e377c2", "#8c564b", "#9467bd")
SIZE = (12.0, 7.0)
DPI = 100


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


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
            f"{_seconds(rec['max'])} / {_seconds(rec['p50'])} over {rec['heals']} heals",
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


def _windows(history: History) -> list[tuple[float, float, str, str]]:
    """(start, end, kind, detail) of every fault; one cut short by the run's end ends there."""
    open_faults: dict[tuple[str, str], float] = {}
    out = []
    for f in history.faults:
        key = (f.kind, f.detail)
        if f.action == START:
            open_faults[key] = f.t
        elif f.action == HEAL and key in open_faults:
            out.append((open_faults.pop(key), f.t, f.kind, f.detail))
    out += [(t, history.end, kind, detail) for (kind, detail), t in open_faults.items()]
    return sorted(out)


def plot(history: History, path: Path, title: str) -> None:
    """Write the timeline PNG of a run."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    fig = Figure(figsize=SIZE, dpi=DPI)
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    windows = _windows(history)
    for ax in (top, bottom):
        for start, end, kind, _ in windows:
            ax.axvspan(start, end, color=FAULT_COLORS.get(kind, "#cccccc"), alpha=0.15, lw=0)
    tips: dict[int, list[tuple[float, int]]] = defaultdict(list)
    for s in history.samples:
        if s.tip is not None:
            tips[s.node].append((s.t, s.tip))
    highest = max((tip for points in tips.values() for _, tip in points), default=1)
    for k in range(history.nodes):
        points = tips.get(k, [])
        if points:
            xs, ys = zip(*points, strict=True)
            top.step(
                [*xs, history.end],
                [*ys, ys[-1]],
                where="post",
                color=NODE_COLORS[k % len(NODE_COLORS)],
                lw=1.2,
                label=f"node {k}",
            )
    for e in history.exits:
        y = max((tip for t, tip in tips.get(e.node, []) if t <= e.t), default=0)
        top.plot([e.t], [y], "x", color="black", ms=7)
    for start, _end, kind, detail in windows:
        top.text(
            start, highest * 1.01, f"{kind}: {detail}", rotation=90, fontsize=6, va="bottom",
            ha="left", color=FAULT_COLORS.get(kind, "#333333"),
        )  # fmt: skip
    top.set_ylabel("tip round")
    top.set_ylim(0, highest * 1.35 + 1)
    handles, _labels = top.get_legend_handles_labels()
    kinds = sorted({kind for _, _, kind, _ in windows})
    handles += [Patch(color=FAULT_COLORS[k], alpha=0.3, label=k) for k in kinds]
    top.legend(handles=handles, loc="upper left", fontsize=7, ncol=2)
    top.set_title(title, fontsize=10)
    for outcome in (ACK, REFUSED, TIMEOUT, ERROR):
        ops = [op for op in history.ops if op.outcome == outcome]
        if ops:
            bottom.scatter(
                [op.start for op in ops],
                [max(1.0, (op.end - op.start) * 1000) for op in ops],
                s=3,
                color=OUTCOME_COLORS[outcome],
                label=f"{outcome} ({len(ops):,})",
                alpha=0.6,
                lw=0,
            )
    bottom.set_yscale("log")
    bottom.set_ylabel("request latency (ms)")
    bottom.set_xlabel("seconds since the load started")
    bottom.legend(loc="upper left", fontsize=7, markerscale=3)
    fig.tight_layout()
    fig.savefig(path)
