"""The VRF(r, s) hash chain: native SHA-256 links against a hashlib loop.

Each link hashes the 32 bytes of the previous one, so the chain is serial:
the figure is the latency of one SHA-256 compression on the CPU's SHA
extensions, plus the per-link overhead.
"""

from __future__ import annotations

import hashlib

from echorand.protocol.sortition import vrf_chain
from echorand.tools.benchmarks import Report, Row, best_time

HASH_TARGET_NS = 60.0

SEED = hashlib.sha256(b"echorand benchmark").digest()


def _hashlib_chain(count: int) -> bytes:
    """The baseline: VRF_0 .. VRF_{count-1} with hashlib, one Python iteration a link."""
    h = hashlib.sha256(SEED + (1).to_bytes(8, "big") + (1).to_bytes(4, "big")).digest()
    links = []
    for _ in range(count):
        links.append(h)
        h = hashlib.sha256(h).digest()
    return b"".join(links)


def run(count: int = 100_000, repeat: int = 5) -> Report:
    """Time `count` links of vrf_chain against the same chain made by a hashlib loop."""
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    if vrf_chain(SEED, 1, 1, min(count, 1000)) != _hashlib_chain(min(count, 1000)):
        raise AssertionError("vrf_chain and hashlib disagree")
    ours = best_time(lambda: vrf_chain(SEED, 1, 1, count), repeat=repeat)
    baseline = best_time(lambda: _hashlib_chain(count), repeat=repeat)
    report = Report(title="chain: VRF(r, s) SHA-256 hash chain")
    per_hash_ns = ours / count * 1e9
    report.add(
        Row(
            name=f"vrf_chain, {count:,} links",
            seconds=ours,
            items=count,
            baseline="hashlib.sha256 loop",
            baseline_seconds=baseline,
            target=f"<= {HASH_TARGET_NS:g} ns per hash",
            target_met=per_hash_ns <= HASH_TARGET_NS,
            extra={"ns_per_hash": per_hash_ns, "baseline_ns_per_hash": baseline / count * 1e9},
        )
    )
    return report
