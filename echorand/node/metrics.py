"""The node's metrics and their Prometheus text exposition (format 0.0.4).

Names follow Prometheus' conventions: the prefix `echorand_`, counters end in `_total`,
durations are `_seconds` and sizes `_bytes` (base units), and every family has a HELP
and a TYPE line. A labelled family (`dict` value) has one label, `reason` unless said.
`tests/node/test_http_api.py` reads a live node's `/metrics` with `prometheus_client`'s parser
and `promtool check metrics`; `docs/grafana/echorand.json` charts them.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "NET_COUNTERS",
    "NET_GAUGES",
    "PREFIX",
    "Histogram",
    "Metric",
    "exposition",
    "network_metrics",
]

PREFIX = "echorand_"

Kind = Literal["counter", "gauge", "histogram"]


SECONDS_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
"""The buckets of the node's durations (rounds, transaction finality), in seconds."""


class Histogram:
    """Observations counted into cumulative buckets (upper bounds, +Inf added)."""

    __slots__ = ("bounds", "count", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        if list(bounds) != sorted(set(bounds)) or not bounds:
            raise ValueError("bucket bounds must be distinct and ascending")
        self.bounds = tuple(float(b) for b in bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.count = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.count += 1
        self.sum += value

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound, observations <= bound), +Inf last."""
        out, running = [], 0
        for bound, n in zip((*self.bounds, math.inf), self.counts, strict=True):
            running += n
            out.append((bound, running))
        return out


@dataclass(frozen=True, slots=True)
class Metric:
    """One metric family: its name without the prefix, kind, help and value."""

    name: str
    kind: Kind
    help: str
    value: float | Mapping[str, float] | Histogram
    label: str = "reason"


NET_COUNTERS: dict[str, tuple[str, str]] = {
    "frames_in": ("net_frames_received_total", "frames read from peers"),
    "frames_out": ("net_frames_sent_total", "frames written to peers"),
    "bytes_in": ("net_received_bytes_total", "bytes read from peers"),
    "bytes_out": ("net_sent_bytes_total", "bytes written to peers"),
    "delivered": ("net_delivered_messages_total", "messages handed to the node"),
    "duplicates": ("net_duplicate_messages_total", "messages already seen, not delivered"),
    "handshakes": ("net_handshakes_total", "peer handshakes completed"),
    "dial_failures": ("net_dial_failures_total", "outgoing connections that failed"),
    "inbox_full": ("net_inbox_full_total", "times the inbox was full and a peer waited"),
    "shed_frames": ("net_shed_frames_total", "low-priority frames shed to slow peers"),
    "sync_requests_served": ("sync_requests_served_total", "block requests answered"),
    "sync_requests_ignored": ("sync_requests_ignored_total", "block requests ignored"),
    "sync_timeouts": ("sync_timeouts_total", "block requests of ours that timed out"),
    "sync_hedges": ("sync_hedges_total", "block requests also sent to a second peer"),
    "sync_hedged_late": ("sync_hedged_late_total", "answers dropped: another peer was first"),
    "sync_slow_answers": ("sync_slow_answers_total", "timeouts not charged: answer arriving"),
    "sync_blocks": ("sync_blocks_total", "certified blocks received by sync"),
}
"""Network counter -> (metric name, help); every one is exposed, 0 until counted."""
NET_GAUGES: dict[str, tuple[str, str]] = {
    "peers": ("peers", "peers connected (handshake done)"),
    "connections": ("net_connections", "open connections, handshaking ones included"),
    "inbox_bytes": ("net_inbox_bytes", "bytes of received messages waiting for the node"),
    "inbox_batches": ("net_inbox_batches", "batches of received messages waiting"),
    "seen": ("net_seen_messages", "message ids remembered against duplicates"),
    "banned": ("net_banned", "peer addresses banned now"),
    "tx_inbox_bytes": ("net_tx_inbox_bytes", "bytes of gossiped transactions waiting"),
    "tx_inbox_batches": ("net_tx_inbox_batches", "batches of gossiped transactions waiting"),
    "partial_bytes": ("net_partial_bytes", "bytes of frames received in part, all peers"),
}
_DROP = "drop_"
_PENALTY = "penalty_"


def network_metrics(counters: Mapping[str, int]) -> list[Metric]:
    """The network's counters and gauges (`Network.metrics()`) as metric families."""
    out = [
        Metric(name, "gauge", text, counters.get(key, 0))
        for key, (name, text) in NET_GAUGES.items()
    ]
    out += [
        Metric(name, "counter", text, counters.get(key, 0))
        for key, (name, text) in NET_COUNTERS.items()
    ]
    known = {*NET_COUNTERS, *NET_GAUGES}
    for key, value in sorted(counters.items()):
        if key not in known and not key.startswith((_DROP, _PENALTY)):
            out.append(Metric(f"net_{key}_total", "counter", f"network counter {key}", value))
    drops = {k.removeprefix(_DROP): v for k, v in counters.items() if k.startswith(_DROP)}
    out.append(Metric("peer_drops_total", "counter", "peers disconnected, by reason", drops))
    penalties = {k.removeprefix(_PENALTY): v for k, v in counters.items() if k.startswith(_PENALTY)}
    out.append(
        Metric("peer_penalties_total", "counter", "score points charged to peers", penalties)
    )
    return out


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _escape(text: str) -> str:
    return _escape_help(text).replace('"', '\\"')


def _number(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def _samples(metric: Metric, full: str) -> Iterable[str]:
    value = metric.value
    if isinstance(value, Histogram):
        for bound, n in value.cumulative():
            yield f'{full}_bucket{{le="{_number(bound)}"}} {n}'
        yield f"{full}_sum {_number(value.sum)}"
        yield f"{full}_count {value.count}"
    elif isinstance(value, Mapping):
        for key, v in sorted(value.items()):
            yield f'{full}{{{metric.label}="{_escape(str(key))}"}} {_number(v)}'
    else:
        yield f"{full} {_number(value)}"


def exposition(metrics: Iterable[Metric]) -> str:
    """The Prometheus text format of `metrics` (sorted by name)."""
    lines = []
    for metric in sorted(metrics, key=lambda m: m.name):
        full = PREFIX + metric.name
        lines.append(f"# HELP {full} {_escape_help(metric.help)}")
        lines.append(f"# TYPE {full} {metric.kind}")
        lines.extend(_samples(metric, full))
    return "\n".join(lines) + "\n"
