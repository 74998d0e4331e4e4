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
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from echorand.tools.benchmarks import Report, Row
from echorand.tools.devnet import DEVNET_PARAMS, DevnetOptions, run_devnet

TARGET_BLOCKS_PER_S = 4.0
TARGET_TPS = 5000.0
TARGET_P50_MS = 1000
SCALE_TOLERANCE = 0.10
"""Within 10 % of the baseline count (and its empty share within 10 points)."""
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
    **_ignored: Any,
) -> Report:
    counts = [accounts] if isinstance(accounts, int) else list(accounts)
    if not counts or min(counts) < nodes:
        raise ValueError(f"every --accounts count must be at least the {nodes} nodes")
    if senders is not None and not 2 <= senders <= min(counts):
        raise ValueError("--senders must be between 2 and the smallest --accounts count")
    if len(counts) > 1:
        return _scaling(nodes, counts, load_seconds, tps, senders, seed)
    return _targets(nodes, counts[0], empty_seconds, load_seconds, tps, senders, seed)


def _options(
    nodes: int, accounts: int, seconds: float, tps: float, senders: int | None, seed: str
) -> DevnetOptions:
    ready = DevnetOptions().ready_timeout + accounts * READY_SECONDS_PER_ACCOUNT
    return DevnetOptions(
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
