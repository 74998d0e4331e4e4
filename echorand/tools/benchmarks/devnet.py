"""`echorand bench devnet`: 4 node processes on loopback, against the node's targets.

With one `--accounts` count: two runs of `echorand.tools.devnet`, one with an empty mempool
(how many blocks a second the consensus makes on its own), one under an offered transfer
load for `load_seconds` (transfers finalized per second, overall and per 10-second
window, and the finality p50/p99 from submission to the commit at node 0); both report
how many blocks of their window are final at node 0, and how many still tentative
(PROTOCOL §6). The targets
are absolute, so the rows report them (`target_met`) instead of a ratio to a baseline.

With several (`--accounts 400 1000000 10000000`): one loaded run per count, the same
offered load each time, in one report (`--senders S`: from the first S accounts at every
size, so that the ledgers differ in their size only). The first count is the baseline:
each other count's blocks/s, empty share, transfers/s and p50 finality are compared with
it, and the target is to stay within 10 % of it (the empty share within 10 points): a
node's per-round cost must not grow with the ledger (docs/performance.md).

With `--overload`: the peak first, measured (one run offered `--tps`, its finalized
transfers/s: admission control holds the commit rate at what the node can do) or given
(`--peak`), then one run offered 1x, 1.5x, 2x and 4x the peak. Each row gives the
finalized transfers/s and the p50 finality of what the nodes accepted, against the 1x run;
the target is no congestion collapse: at least 90 % of the 1x throughput at every load,
and p50 finality under 1 s. The curve (finalized against offered) goes to a PNG
(`--png`), and the load average of the machine into the report: on a shared machine a
run is only as fast as the cores it got.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from echorand.tools.benchmarks import Report, Row
from echorand.tools.devnet import DEVNET_PARAMS, DevnetOptions, run_devnet

TARGET_BLOCKS_PER_S = 4.0
TARGET_TPS = 5000.0
TARGET_P50_MS = 1000
SCALE_TOLERANCE = 0.10
"""Within 10 % of the baseline count (and its empty share within 10 points)."""
OVERLOAD_FACTORS = (1.0, 1.5, 2.0, 4.0)
"""Offered loads of the overload runs, as multiples of the peak."""
COLLAPSE_SHARE = 0.9
"""No collapse: every overload run finalizes at least this share of the 1x run's rate."""
DEFAULT_PNG = "echorand-overload.png"
READY_SECONDS_PER_ACCOUNT = 1 / 50_000
"""Start-up allowance on top of the devnet's own: 200 s more at ten million accounts."""


def run(
    *,
    nodes: int = 4,
    accounts: int | Sequence[int] = 400,
    empty_seconds: float = 20.0,
    load_seconds: float = 60.0,
    tps: float = 6000.0,
    senders: int | None = None,
    seed: str = "bench-devnet",
    overload: bool = False,
    peak: float | None = None,
    png: str | None = DEFAULT_PNG,
    **_ignored: Any,
) -> Report:
    counts = [accounts] if isinstance(accounts, int) else list(accounts)
    if not counts or min(counts) < nodes:
        raise ValueError(f"every --accounts count must be at least the {nodes} nodes")
    if senders is not None and not 2 <= senders <= min(counts):
        raise ValueError("--senders must be between 2 and the smallest --accounts count")
    if overload:
        if len(counts) > 1 or (peak is not None and peak <= 0) or tps <= 0:
            raise ValueError("--overload takes one --accounts count and a positive --tps/--peak")
        return _overload(nodes, counts[0], load_seconds, tps, peak, senders, seed, png)
    if len(counts) > 1:
        return _scaling(nodes, counts, load_seconds, tps, senders, seed)
    return _targets(nodes, counts[0], empty_seconds, load_seconds, tps, senders, seed)


def _options(
    nodes: int,
    accounts: int,
    seconds: float,
    tps: float,
    senders: int | None,
    seed: str,
    admission: bool = True,
) -> DevnetOptions:
    ready = DevnetOptions().ready_timeout + accounts * READY_SECONDS_PER_ACCOUNT
    return DevnetOptions(
        admission=admission,
        nodes=nodes,
        accounts=accounts,
        senders=senders,
        duration=seconds,
        tps=tps,
        seed=seed,
        ready_timeout=ready,
    )


def _targets(
    nodes: int,
    accounts: int,
    empty_seconds: float,
    load_seconds: float,
    tps: float,
    senders: int | None,
    seed: str,
) -> Report:
    report = Report(f"devnet: {nodes} node processes on loopback ({DEVNET_PARAMS})")
    empty = run_devnet(_options(nodes, accounts, empty_seconds, 0, senders, seed))
    bps = empty["blocks_per_s"]
    report.add(
        Row(
            "blocks, empty mempool",
            seconds=empty["seconds"] / max(1, empty["blocks"]),
            target=f">= {TARGET_BLOCKS_PER_S:g} blocks/s",
            target_met=bps >= TARGET_BLOCKS_PER_S and empty["forks"] == 0,
            extra={
                "blocks_per_s": bps,
                "blocks": empty["blocks"],
                "final_blocks": empty["final_blocks"],
                "tentative_blocks": empty["tentative_blocks"],
                "forks": empty["forks"],
            },
        )
    )
    load = run_devnet(_options(nodes, accounts, load_seconds, tps, senders, seed))
    windows = load["tps_per_10s"] or [load["tps"]]
    report.add(
        Row(
            f"transfers finalized, {tps:g}/s offered for {load_seconds:g} s",
            seconds=load["seconds"],
            items=max(1, load["transactions"]),
            target=f">= {TARGET_TPS:g}/s sustained (every 10 s window)",
            target_met=min(windows) >= TARGET_TPS and load["forks"] == 0,
            extra={
                "tps": load["tps"],
                "tps_min_10s": min(windows),
                "blocks_per_s": load["blocks_per_s"],
                "final_blocks": load["final_blocks"],
                "tentative_blocks": load["tentative_blocks"],
                "submitted": load["submitted"],
                "accepted": load["accepted"],
                "retried": load["retried"],
                "forks": load["forks"],
            },
        )
    )
    p50, p99 = load["finality_ms"]["p50"], load["finality_ms"]["p99"]
    report.add(
        Row(
            "finality (submission to commit), p50",
            seconds=(p50 or 0) / 1000,
            target=f"<= {TARGET_P50_MS} ms",
            target_met=p50 is not None and p50 <= TARGET_P50_MS,
            extra={"p50_ms": p50 or -1, "p99_ms": p99 or -1},
        )
    )
    return report


def _scaling(
    nodes: int,
    counts: list[int],
    load_seconds: float,
    tps: float,
    senders: int | None,
    seed: str,
) -> Report:
    source = "every account" if senders is None else f"the first {senders:,} accounts"
    report = Report(
        f"devnet by ledger size: {nodes} node processes, {tps:g} transfers/s offered for"
        f" {load_seconds:g} s from {source} ({DEVNET_PARAMS})"
    )
    base: dict[str, Any] | None = None
    for accounts in counts:
        summary = run_devnet(_options(nodes, accounts, load_seconds, tps, senders, seed))
        for row in _scaling_rows(accounts, summary, base, counts[0]):
            report.add(row)
        base = base or summary
    return report


def _measures(s: dict[str, Any]) -> dict[str, float]:
    """Seconds a block, seconds a finalized transfer, p50 finality in seconds (0: none)."""
    p50 = s["finality_ms"]["p50"]
    return {
        "a block": s["seconds"] / s["blocks"] if s["blocks"] else 0.0,
        "a finalized transfer": s["seconds"] / s["transactions"] if s["transactions"] else 0.0,
        "finality p50": (p50 or 0) / 1000,
    }


def _empty_share(s: dict[str, Any]) -> float:
    return s["empty_blocks"] / max(1, s["blocks"])


def _scaling_rows(
    accounts: int, s: dict[str, Any], base: dict[str, Any] | None, base_accounts: int
) -> list[Row]:
    """Time a block, time a finalized transfer and p50 finality at `accounts`, each against
    the baseline count's (`base`, None for the baseline itself): within 10 %, and for the
    blocks an empty share within 10 points."""
    extra: dict[str, float | int | str] = {
        "blocks_per_s": s["blocks_per_s"],
        "empty_share": round(_empty_share(s), 3),
        "tps": s["tps"],
        "p50_ms": s["finality_ms"]["p50"] or -1,
        "p99_ms": s["finality_ms"]["p99"] or -1,
        "forks": s["forks"],
    }
    rows = []
    baselines = None if base is None else _measures(base)
    for name, seconds in _measures(s).items():
        title = f"{accounts:,} accounts: {name}"
        if baselines is None or base is None:
            rows.append(Row(title, seconds=seconds, extra=extra))
            continue
        baseline = baselines[name]
        met = 0 < seconds <= baseline / (1 - SCALE_TOLERANCE) and s["forks"] == 0
        target = "within 10 %"
        if name == "a block":
            met = met and _empty_share(s) <= _empty_share(base) + SCALE_TOLERANCE
            target += ", empty share within 10 points"
        rows.append(
            Row(
                title,
                seconds=seconds,
                baseline=f"{base_accounts:,} accounts",
                baseline_seconds=baseline,
                target=target,
                target_met=met,
                extra=extra,
            )
        )
    return rows


def _overload(
    nodes: int,
    accounts: int,
    load_seconds: float,
    tps: float,
    peak: float | None,
    senders: int | None,
    seed: str,
    png: str | None,
) -> Report:
    """The peak (measured at `tps` offered, or given), then per OVERLOAD_FACTORS one run
    with admission control and, right after it at the same load, one without (the
    baseline: the node as it was before)."""
    load = os.getloadavg()
    report = Report(
        f"devnet under overload: {nodes} node processes, {accounts:,} accounts,"
        f" {load_seconds:g} s a run ({DEVNET_PARAMS})"
    )

    def devnet(offered: float, admission: bool = True) -> dict[str, Any]:
        options = _options(nodes, accounts, load_seconds, offered, senders, seed, admission)
        return run_devnet(options)

    measured = None
    if peak is None:
        measured = devnet(tps)
        peak = float(measured["tps"])
        report.add(_overload_row(f"peak probe, {tps:,.0f}/s offered", measured, None, None))
        if peak <= 0:
            raise RuntimeError("the peak probe finalized nothing: no peak to overload")
    runs: list[tuple[float, dict[str, Any], dict[str, Any]]] = []
    for factor in OVERLOAD_FACTORS:
        offered = round(factor * peak)
        ours, before = devnet(offered), devnet(offered, admission=False)
        runs.append((factor, ours, before))
        name = f"{factor:g}x peak, {offered:,}/s offered"
        report.add(_overload_row(name, ours, runs[0][1], before))
    report.machine["loadavg_before"] = " ".join(f"{x:.2f}" for x in load)
    report.machine["loadavg_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    report.machine["peak_tps"] = round(peak, 1)
    report.machine["peak"] = "given" if measured is None else f"measured at {tps:g}/s offered"
    if png:
        after = os.getloadavg()[0]
        title = (
            f"devnet, {nodes} node processes, {accounts:,} accounts, {load_seconds:g} s a run;"
            f" load average {load[0]:.1f} before, {after:.1f} after (2 cores)"
        )
        write_overload_png(Path(png), peak, runs, title)
        report.machine["png"] = png
    return report


def _overload_row(
    name: str, s: dict[str, Any], first: dict[str, Any] | None, before: dict[str, Any] | None
) -> Row:
    """Seconds a finalized transfer (the inverse of the rate) with admission control,
    against the same load without it (`before`; the ratio is the rates' ratio); the
    target: at least COLLAPSE_SHARE of the 1x run's rate (`first`), p50 under 1 s."""
    p50 = s["finality_ms"]["p50"]
    extra: dict[str, float | int | str] = {
        "offered_tps": s["offered_tps"],
        "tps": s["tps"],
        "tps_min_10s": min(s["tps_per_10s"] or [s["tps"]]),
        "p50_ms": p50 if p50 is not None else -1,
        "p99_ms": s["finality_ms"]["p99"] or -1,
        "p50_from_offer_ms": (s.get("offered_finality_ms") or {}).get("p50") or -1,
        "blocks_per_s": s["blocks_per_s"],
        "empty_share": round(_empty_share(s), 3),
        "accepted": s["accepted"],
        "deferred": s["deferred"],
        "busy": s["busy"],
        "refused": sum(s["refused"].values()),
        "forks": s["forks"],
    }
    if before is not None:
        b50 = before["finality_ms"]["p50"]
        extra.update(
            before_tps=before["tps"],
            before_p50_ms=b50 if b50 is not None else -1,
            before_p50_from_offer_ms=(before.get("offered_finality_ms") or {}).get("p50") or -1,
            before_empty_share=round(_empty_share(before), 3),
            before_forks=before["forks"],
        )
    if first is None:
        return Row(name, seconds=_per_transfer(s), extra=extra)
    met = (
        s["tps"] >= COLLAPSE_SHARE * first["tps"]
        and p50 is not None
        and p50 < TARGET_P50_MS
        and s["forks"] == 0
    )
    return Row(
        name,
        seconds=_per_transfer(s),
        baseline=None if before is None else "no admission control, same load",
        baseline_seconds=None if before is None else _per_transfer(before),
        target=f">= {COLLAPSE_SHARE:.0%} of the 1x rate, p50 < {TARGET_P50_MS} ms",
        target_met=met,
        extra=extra,
    )


def _per_transfer(s: dict[str, Any]) -> float:
    """Seconds of the run per finalized transfer (0: none finalized)."""
    return s["seconds"] / s["transactions"] if s["transactions"] else 0.0


def write_overload_png(
    path: Path,
    peak: float,
    runs: list[tuple[float, dict[str, Any], dict[str, Any]]],
    title: str,
) -> None:
    """Finalized transfers/s (and p50 finality) against the offered load, with and
    without admission control."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    offered = [s["offered_tps"] for _, s, _ in runs]
    finalized = [s["tps"] for _, s, _ in runs]
    before = [b["tps"] for _, _, b in runs]
    p50 = [(s["finality_ms"]["p50"] or 0) / 1000 for _, s, _ in runs]
    p50_before = [(b["finality_ms"]["p50"] or 0) / 1000 for _, _, b in runs]
    fig = Figure(figsize=(7.5, 4.5), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(offered, finalized, "o-", color="tab:blue", label="finalized tx/s")
    ax.plot(offered, before, "x-", color="tab:grey", label="without admission control")
    ax.plot(offered, offered, ":", color="grey", label="offered = finalized")
    ax.axhline(COLLAPSE_SHARE * finalized[0], color="tab:red", ls="--", lw=0.8)
    ax.set_xlabel("offered transfers/s")
    ax.set_ylabel("finalized transfers/s")
    ax.set_ylim(bottom=0, top=max(*finalized, *before, peak) * 1.4)
    ax.set_title(title, fontsize=8)
    right = ax.twinx()
    right.plot(offered, p50, "s--", color="tab:orange", label="p50 finality (s)")
    right.plot(offered, p50_before, "+--", color="tab:brown", label="p50, without")
    right.set_ylabel("p50 finality, s")
    right.set_ylim(bottom=0, top=max(1.0, *p50, *p50_before) * 1.3)
    lines = ax.get_lines()[:3] + right.get_lines()
    ax.legend(lines, [line.get_label() for line in lines], loc="lower right", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
