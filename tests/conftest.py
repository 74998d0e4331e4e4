"""Test settings shared by the whole suite."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# The machines are shared and noisy: no deadlines, and a fixed derandomised
# profile in CI so that a run is reproducible from its log.
settings.register_profile("default", deadline=None)
settings.register_profile(
    "ci", deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("ci" if os.environ.get("CI") else "default")
