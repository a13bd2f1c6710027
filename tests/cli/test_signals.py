"""Stop signals reach a busy event loop whose self-pipe is full (``atoll.cli.signals``)."""

from __future__ import annotations

import asyncio
import os
import signal
import threading

import pytest

from atoll.cli.signals import stop_signals


async def _signal_while_the_self_pipe_is_full(loop: asyncio.AbstractEventLoop) -> None:
    """Threads hand the loop work while it is busy (here: blocked in ``join``) until its
    self-pipe is full, then SIGTERM arrives; the loop runs again afterwards."""

    def finish_work() -> None:
        for _ in range(50_000):
            loop.call_soon_threadsafe(lambda: None)

    worker = threading.Thread(target=finish_work)
    worker.start()
    worker.join()
    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.sleep(0.3)


# asyncio's handler reports the dropped byte as an unraisable BlockingIOError.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_sigterm_is_not_lost_when_the_loops_self_pipe_is_full():
    async def main() -> tuple[list[int], list[int]]:
        loop = asyncio.get_running_loop()
        # asyncio's own handler, for comparison: the same conditions drop the signal.
        seen_by_asyncio: list[int] = []
        loop.add_signal_handler(signal.SIGTERM, seen_by_asyncio.append, signal.SIGTERM)
        try:
            await _signal_while_the_self_pipe_is_full(loop)
        finally:
            loop.remove_signal_handler(signal.SIGTERM)
        seen: list[int] = []
        with stop_signals(loop, lambda s: loop.call_soon_threadsafe(seen.append, s)):
            await _signal_while_the_self_pipe_is_full(loop)
        return seen_by_asyncio, seen

    before = signal.getsignal(signal.SIGTERM)
    seen_by_asyncio, seen = asyncio.run(main())
    assert seen_by_asyncio == []  # the scenario does fill the pipe
    assert seen == [signal.SIGTERM]
    assert signal.getsignal(signal.SIGTERM) is before  # put back
