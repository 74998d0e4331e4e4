"""A short fuzz run in the suite (the long one: `echorand bench fuzz`, docs/performance.md):
mutated frames of every message type through the frame splitter and every decoder."""

from __future__ import annotations

import random

from echorand.tools.benchmarks.fuzz import INTERESTING, fuzz, mutate, samples
from echorand.wire.messages import decode


def test_every_sample_is_a_valid_frame_of_a_distinct_type() -> None:
    valid = samples(random.Random(3))
    assert len({f[0] for f in valid}) == len(valid) == 13  # every type of the codec
    for f in valid:
        assert decode(f).encode() == f


def test_mutations_change_the_frame() -> None:
    rng = random.Random(4)
    valid = samples(rng)
    changed = sum(mutate(f, valid, rng) != f for f in valid * 50)
    assert changed >= 0.9 * len(valid) * 50
    assert 100_001 in INTERESTING  # one past the block limit


def test_twenty_thousand_mutated_frames_crash_nothing_and_stay_within_the_limits() -> None:
    outcome, _, grown = fuzz(20_000, seed=7)
    assert outcome.crashes == 0, outcome.first_crash
    assert outcome.refused > 10_000 and outcome.accepted > 0  # both paths are exercised
    assert grown < 64 << 20
