"""Stopping asyncio tasks for sure.

``task.cancel(); await task`` can wait forever on Python 3.11: ``asyncio.wait_for`` (used inside
nats-py's requests and fetches, among others) swallows a cancellation that arrives just as the
future it waits for completes (CPython gh-86296, fixed in 3.12 by rewriting ``wait_for``). A task
that loops (a lease heartbeat, a partition's fetch loop, a timer pass) then runs on as if nothing
had happened, and whoever waits for it waits forever. ``cancel_and_wait`` cancels again until
the task has ended.

>>> import asyncio
>>> async def stubborn() -> None:
...     for _ in range(2):  # swallows the first cancellation, as wait_for may
...         try:
...             await asyncio.sleep(3600)
...         except asyncio.CancelledError:
...             pass
>>> async def main() -> bool:
...     task = asyncio.create_task(stubborn())
...     await asyncio.sleep(0)
...     await cancel_and_wait(task, again_after=0.01)
...     return task.done()
>>> asyncio.run(main())
True
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["cancel_and_wait"]


async def cancel_and_wait(*tasks: asyncio.Future[Any] | None, again_after: float = 1.0) -> None:
    """Cancel ``tasks`` (``None`` is skipped) and return once every one has ended, cancelling
    again each ``again_after`` seconds one has not. Their results and errors are dropped (a
    task that failed is not this caller's failure to raise); cancelling the caller cancels the
    wait, not the guarantee that a cancel was asked for."""
    left = {t for t in tasks if t is not None}
    while left:
        for t in left:
            t.cancel()
        _, left = await asyncio.wait(left, timeout=again_after)
    for done in tasks:
        if done is not None and not done.cancelled():
            done.exception()  # retrieved: no "exception was never retrieved" at collection
