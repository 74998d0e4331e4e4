"""asyncio helpers shared by the node's parts."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

CANCEL_POLL = 0.1
"""Seconds between two cancellations of a task that ran on."""


async def cancel_and_wait(tasks: Iterable[asyncio.Future[Any]]) -> None:
    """Cancel `tasks` and wait until every one is done; their results and exceptions are
    dropped.

    A task that runs on is cancelled again: on Python 3.11 `asyncio.wait_for` swallows a
    cancellation that arrives just as what it waits for completes (CPython gh-86296), and a
    task in a `while True` loop then never ends. (A node stopping on a full disk hung so:
    its sync loop's request was answered as it was cancelled.)
    """
    tasks = list(tasks)
    pending = {t for t in tasks if not t.done()}
    while pending:
        for task in pending:
            task.cancel()
        _done, pending = await asyncio.wait(pending, timeout=CANCEL_POLL)
    for task in tasks:
        if not task.cancelled():
            task.exception()
