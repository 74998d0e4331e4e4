"""The Grafana dashboard of a node's metrics: `python -m echorand.tools.dashboard` writes
docs/grafana/echorand.json (a test keeps the file equal to this and checks that every
metric it charts is one a live node exports).

Rounds, steps per round, round time and finality, transactions per second, mempool,
peers and traffic, drops by reason, supply. A panel is one `Panel(...)` line in PANELS.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass

__all__ = ["PANELS", "Panel", "dashboard"]

SELECTOR = '{instance=~"$instance"}'


@dataclass(frozen=True, slots=True)
class Panel:
    title: str
    exprs: tuple[tuple[str, str], ...]
    """(PromQL, legend)."""
    unit: str = "short"
    description: str = ""


def _q(quantile: float, histogram: str) -> str:
    return (
        f"histogram_quantile({quantile}, sum by (instance, le) "
        f"(rate({histogram}_bucket{SELECTOR}[5m])))"
    )


def _rate(counter: str, by: str = "instance", window: str = "1m") -> str:
    return f"sum by ({by}) (rate({counter}{SELECTOR}[{window}]))"


S = SELECTOR
PANELS: tuple[Panel, ...] = (
    Panel(
        "Rounds",
        (
            (f"echorand_tip_round{S}", "tip {{instance}}"),
            (f"echorand_round{S}", "in progress {{instance}}"),
        ),
        description="the last committed round and the round in progress",
    ),
    Panel(
        "Blocks per second",
        (
            (_rate("echorand_blocks_committed_total"), "blocks {{instance}}"),
            (_rate("echorand_empty_blocks_committed_total"), "empty {{instance}}"),
        ),
        "ops",
    ),
    Panel(
        "Steps per round",
        (
            (_q(0.5, "echorand_commit_step"), "p50 {{instance}}"),
            (_q(0.99, "echorand_commit_step"), "p99 {{instance}}"),
            (f"echorand_step{S}", "step now {{instance}}"),
        ),
        description="the step whose certificate decided the round: 4 is the fast path",
    ),
    Panel(
        "Round time",
        (
            (_q(0.5, "echorand_round_duration_seconds"), "p50 {{instance}}"),
            (_q(0.99, "echorand_round_duration_seconds"), "p99 {{instance}}"),
        ),
        "s",
    ),
    Panel(
        "Transaction finality",
        (
            (_q(0.5, "echorand_transaction_finality_seconds"), "p50 {{instance}}"),
            (_q(0.99, "echorand_transaction_finality_seconds"), "p99 {{instance}}"),
        ),
        "s",
        "from admission at the node to its block's commit",
    ),
    Panel(
        "Transactions per second",
        (
            (_rate("echorand_transactions_committed_total"), "committed {{instance}}"),
            (_rate("echorand_transactions_admitted_total"), "admitted {{instance}}"),
        ),
        "ops",
    ),
    Panel(
        "Mempool",
        (
            (f"echorand_mempool_transactions{S}", "transactions {{instance}}"),
            (_rate("echorand_mempool_evicted_total"), "evicted/s {{instance}}"),
        ),
    ),
    Panel("Mempool bytes", ((f"echorand_mempool_bytes{S}", "{{instance}}"),), "bytes"),
    Panel(
        "Peers",
        (
            (f"echorand_peers{S}", "peers {{instance}}"),
            (f"echorand_net_connections{S}", "connections {{instance}}"),
        ),
    ),
    Panel(
        "Traffic",
        (
            (_rate("echorand_net_received_bytes_total"), "in {{instance}}"),
            (_rate("echorand_net_sent_bytes_total"), "out {{instance}}"),
        ),
        "Bps",
    ),
    Panel(
        "Peers dropped, by reason",
        ((_rate("echorand_peer_drops_total", "reason", "5m"), "{{reason}}"),),
        "ops",
    ),
    Panel(
        "Consensus messages dropped, by reason",
        (
            (
                "sum by (reason) (rate(echorand_consensus_messages_total"
                '{instance=~"$instance", reason!="accepted"}[5m]))',
                "{{reason}}",
            ),
        ),
        "ops",
    ),
    Panel(
        "Transactions refused, by reason",
        ((_rate("echorand_transactions_refused_total", "reason", "5m"), "{{reason}}"),),
        "ops",
    ),
    Panel(
        "Supply",
        (
            (f"echorand_supply{S}", "supply {{instance}}"),
            (f"echorand_reward_level{S}", "reward level {{instance}}"),
        ),
    ),
)


def _panel(i: int, panel: Panel) -> dict[str, object]:
    return {
        "id": i + 1,
        "type": "timeseries",
        "title": panel.title,
        "description": panel.description,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"h": 8, "w": 12, "x": 12 * (i % 2), "y": 8 * (i // 2)},
        "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
        "targets": [
            {"expr": expr, "legendFormat": legend, "refId": chr(ord("A") + j)}
            for j, (expr, legend) in enumerate(panel.exprs)
        ],
    }


def dashboard() -> dict[str, object]:
    """The dashboard's JSON model (Grafana 10+, a Prometheus data source chosen at import)."""
    return {
        "title": "echorand node",
        "uid": "echorand-node",
        "tags": ["echorand"],
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "type": "datasource",
                    "query": "prometheus",
                    "label": "Prometheus",
                },
                {
                    "name": "instance",
                    "type": "query",
                    "datasource": {"type": "prometheus", "uid": "${datasource}"},
                    "query": "label_values(echorand_tip_round, instance)",
                    "includeAll": True,
                    "multi": True,
                    "current": {"text": "All", "value": "$__all"},
                    "refresh": 2,
                },
            ]
        },
        "panels": [_panel(i, p) for i, p in enumerate(PANELS)],
    }


def text() -> str:
    return json.dumps(dashboard(), indent=2) + "\n"


if __name__ == "__main__":
    sys.stdout.write(text())
