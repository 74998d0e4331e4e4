"""asyncio helpers shared by the node's parts."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

CANCEL_POLL = 0.1
"""Seconds between two cancellations of a task that ran on."""


async def cancel_and_wait(
    tasks: Iterable[asyncio.Future[Any]], timeout: float | None = None
) -> set[asyncio.Future[Any]]:
    """Cancel `tasks` and wait until every one is done (or `timeout` seconds passed); their
    results and exceptions are dropped. The tasks still running at the timeout, if any.

    A task that runs on is cancelled again: on Python 3.11 `asyncio.wait_for` swallows a
    cancellation that arrives just as what it waits for completes (CPython gh-86296), and a
    task in a `while True` loop then never ends. (A node stopping on a full disk hung so:
    its sync loop's request was answered as it was cancelled.)
    """
    tasks = list(tasks)
    pending = {t for t in tasks if not t.done()}
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    while pending:
        for task in pending:
            task.cancel()
        wait = CANCEL_POLL if deadline is None else min(CANCEL_POLL, deadline - loop.time())
        if wait <= 0:
            break
        _done, pending = await asyncio.wait(pending, timeout=wait)
    for task in tasks:
        if task.done() and not task.cancelled():
            task.exception()
    return pending
