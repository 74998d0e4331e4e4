"""The leader-order study (seed 002): the native loop against the pure-Python model.

The baseline runs the same experiment height by height with the reference
order `echorand.protocol.leader.round_robin_order`, on the same blocks; the authors
must agree. A second row times the seed's full experiment (10 000 000 blocks)
natively, where the baseline would take minutes.
"""

from __future__ import annotations

import time

from echorand._native import LeaderStudy
from echorand.protocol.leader import max_faulty, round_robin_order
from echorand.tools.benchmarks import Report, Row, best_time

FULL_TARGET_SECONDS = 5.0


def python_authors(validators: int, blocks: int, slow_honest: int | None) -> bytes:
    """The baseline: the experiment with the Python model, F = (N - 1) // 3."""
    f = max_faulty(validators)
    locked: list[int] = []
    authors = bytearray()
    for h in range(blocks):
        order = round_robin_order(validators, locked, h)
        author = order[0]
        if slow_honest is not None:
            for i, v in enumerate(order):
                if v < f or i >= slow_honest:
                    author = v if v < f else order[0]
                    break
        authors.append(author)
        locked = [*locked, author][-f:] if f else []
    return bytes(authors)


def _native_authors(validators: int, blocks: int, slow_honest: int | None) -> bytes:
    study = LeaderStudy(validators, max_faulty(validators), slow_honest=slow_honest)
    return study.run(blocks)


def run(
    validators: int = 16,
    blocks: int = 10_000_000,
    baseline_blocks: int = 20_000,
    repeat: int = 3,
) -> Report:
    """Time the study natively against the Python model (`baseline_blocks`), then in full."""
    if blocks < 1 or baseline_blocks < 1:
        raise ValueError(f"blocks must be at least 1, got {blocks} and {baseline_blocks}")
    f = max_faulty(validators)
    report = Report(title=f"leader: the seed-002 experiment, N={validators}, F={f}")
    for slow_honest in (None, 5):
        scenario = "quick" if slow_honest is None else f"slow honest K={slow_honest}"
        expected = python_authors(validators, baseline_blocks, slow_honest)
        if _native_authors(validators, baseline_blocks, slow_honest) != expected:
            raise AssertionError("LeaderStudy and the Python model disagree")
        ours = best_time(
            lambda k=slow_honest: _native_authors(validators, baseline_blocks, k), repeat=repeat
        )
        start = time.perf_counter()
        python_authors(validators, baseline_blocks, slow_honest)
        baseline = time.perf_counter() - start
        report.add(
            Row(
                name=f"LeaderStudy, {scenario}, {baseline_blocks:,} blocks",
                seconds=ours,
                items=baseline_blocks,
                baseline="echorand.protocol.leader.round_robin_order loop",
                baseline_seconds=baseline,
            )
        )
        start = time.perf_counter()
        _native_authors(validators, blocks, slow_honest)
        full = time.perf_counter() - start
        report.add(
            Row(
                name=f"LeaderStudy, {scenario}, {blocks:,} blocks",
                seconds=full,
                items=blocks,
                target=f"10M blocks <= {FULL_TARGET_SECONDS:g} s",
                target_met=full / blocks * 10_000_000 <= FULL_TARGET_SECONDS,
            )
        )
    return report
