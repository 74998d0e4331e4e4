"""Helpers shared by the tests: the simulator's safety check (which requires progress), and
for the tests that run real node processes (`echorand.tools.devnet.Devnet`) one bounded poll, a
node's tip, a running devnet and a clean stop.

No timed assertion: a wait polls its condition under a generous deadline, so a loaded
machine only makes a test slower; it fails naming what it waited for.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from echorand.sim import SimResult
from echorand.tools.devnet import Devnet

DEADLINE = 120.0
"""Seconds any one wait may take."""
STOP_DEADLINE = 60.0
"""Seconds the nodes have to exit after SIGTERM at the end of a test."""
T = TypeVar("T")


def assert_safe(result: SimResult, *, min_committed: int) -> None:
    """No fork, no bad certificate, nothing final forked, no honest node halted, and
    progress: every live honest node committed at least `min_committed` blocks, each
    certificate checked. A stalled network fails here."""
    assert result.forks == [] and result.final_forks == []
    assert result.bad_certificates == []
    assert result.halted == 0
    assert result.committed >= min_committed, f"only {result.committed} blocks committed"
    assert result.certificates_checked >= result.committed


def until(
    condition: Callable[[], T],
    what: str,
    net: Devnet | None = None,
    *,
    timeout: float = DEADLINE,
    check: Callable[[], None] | None = None,
    interval: float = 0.1,
) -> T:
    """Poll `condition()` until it is truthy and return its value; AssertionError naming
    `what` after `timeout` s. With `net`, fail at once when one of its nodes exited; `check`
    is called at each poll too (to fail at once on another sign). Polls every `interval` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if net is not None:
            net.check_alive()
        if check is not None:
            check()
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting for {what} after {timeout} s")
        time.sleep(interval)


def tip(net: Devnet, k: int) -> int:
    """Node k's tip round (-1 while it does not answer /status)."""
    doc = net.status(k)
    return -1 if doc is None else doc["tip"]["round"]


def stop_cleanly(net: Devnet, timeout: float = STOP_DEADLINE) -> None:
    """SIGTERM every node of `net` and assert each one exits with status 0 within `timeout`:
    a node that crashed earlier, or had to be killed, fails the test."""
    codes = net.stop(timeout)
    assert codes, "no node process to stop"
    failed = {k: code for k, code in codes.items() if code != 0}
    assert failed == {}, (
        f"exit status on SIGTERM (0 expected; -9: killed after {timeout} s): {failed}"
    )


@contextmanager
def running(net: Devnet) -> Iterator[Devnet]:
    """`net` created, started and ready (within DEADLINE); on the way out every node must
    exit 0 on SIGTERM (`stop_cleanly`). After an error inside, `Devnet.__exit__` kills what
    is left."""
    net.create()
    with net:
        net.start()
        net.wait_ready(DEADLINE)
        yield net
        stop_cleanly(net)
