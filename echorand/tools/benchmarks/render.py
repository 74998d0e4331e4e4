"""Printing benchmark reports: a rich table for people, JSON for machines."""

from __future__ import annotations

import sys

import orjson
from rich.console import Console
from rich.table import Table

from echorand.tools.benchmarks import Report


def _fmt_time(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds * 1e9:.3g} ns"


def print_report(report: Report, *, as_json: bool = False, console: Console | None = None) -> None:
    """Print `report` as a table, or as one JSON object when `as_json`."""
    if as_json:
        print(orjson.dumps(report.to_json(), option=orjson.OPT_INDENT_2).decode())
        return
    console = console or Console(width=None if sys.stdout.isatty() else 160)
    table = Table(
        title=report.title, caption=f"{report.machine['cpu']}, {report.machine['cores']} cores"
    )
    for col in ("operation", "time", "per item", "baseline", "baseline time", "ratio", "target"):
        table.add_column(
            col, justify="left" if col in ("operation", "baseline", "target") else "right"
        )
    for row in report.rows:
        ratio = row.ratio
        target = row.target or ""
        if row.target_met is not None:
            target = f"{'[green]met[/]' if row.target_met else '[red]missed[/]'} {target}"
        table.add_row(
            row.name,
            _fmt_time(row.seconds) if row.seconds > 0 else "",
            _fmt_time(row.per_item_ns / 1e9) if row.items > 1 and row.seconds > 0 else "",
            row.baseline or "",
            _fmt_time(row.baseline_seconds) if row.baseline_seconds is not None else "",
            f"{ratio:.2f}x" if ratio is not None else "",
            target,
        )
    console.print(table)
