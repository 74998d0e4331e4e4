"""`echorand bench devnet`: 4 node processes on loopback, against the node's targets.

Two runs of `echorand.devnet`: one with an empty mempool (how many blocks a second the
consensus makes on its own), one under an offered transfer load for `load_seconds`
(transfers finalized per second, overall and per 10-second window, and the finality
p50/p99 from submission to the commit at node 0). Both report how many blocks of their
window are final at node 0, and how many still tentative (PROTOCOL §6). The targets are
absolute, so the rows report them (`target_met`) instead of a ratio to a baseline.
"""

from __future__ import annotations

from typing import Any

from echorand.benchmarks import Report, Row
from echorand.devnet import DEVNET_PARAMS, DevnetOptions, run_devnet

TARGET_BLOCKS_PER_S = 4.0
TARGET_TPS = 5000.0
TARGET_P50_MS = 1000


def run(
    *,
    nodes: int = 4,
    accounts: int = 400,
    empty_seconds: float = 20.0,
    load_seconds: float = 60.0,
    tps: float = 6000.0,
    seed: str = "bench-devnet",
    **_ignored: Any,
) -> Report:
    report = Report(f"devnet: {nodes} node processes on loopback ({DEVNET_PARAMS})")
    empty = run_devnet(
        DevnetOptions(nodes=nodes, accounts=accounts, duration=empty_seconds, tps=0, seed=seed)
    )
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
    load = run_devnet(
        DevnetOptions(nodes=nodes, accounts=accounts, duration=load_seconds, tps=tps, seed=seed)
    )
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
