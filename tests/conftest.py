"""Test settings shared by the whole suite."""

from __future__ import annotations

import os
import secrets

import pytest
from hypothesis import HealthCheck, settings

# The machines are shared and noisy: no deadlines. In CI, Hypothesis tries new examples on
# every run (not derandomised, no example database), all drawn from one seed that the run
# prints in its header: `pytest --hypothesis-seed=N` replays that run, and a failure also
# prints its example's blob (`@reproduce_failure`).
settings.register_profile("default", deadline=None)
settings.register_profile(
    "ci",
    deadline=None,
    derandomize=False,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("ci" if os.environ.get("CI") else "default")


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """In CI, a fresh Hypothesis seed for the run unless `--hypothesis-seed` names one (set
    before Hypothesis' own plugin reads the option)."""
    if os.environ.get("CI") and config.getoption("hypothesis_seed") is None:
        config.option.hypothesis_seed = str(secrets.randbits(32))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`random_seeds` tests (long sweeps over fresh seeds) run only when `-m` names them."""
    if "random_seeds" in (config.getoption("markexpr") or ""):
        return
    chosen = [item for item in items if item.get_closest_marker("random_seeds") is None]
    if len(chosen) < len(items):
        config.hook.pytest_deselected(items=[i for i in items if i not in chosen])
        items[:] = chosen


def pytest_report_header(config: pytest.Config) -> str | None:
    seed = config.getoption("hypothesis_seed")
    if seed is None:
        return None
    return f"hypothesis seed {seed} (replay this run with --hypothesis-seed={seed})"
