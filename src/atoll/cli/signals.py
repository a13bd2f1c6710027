"""SIGINT and SIGTERM for the long-running commands (``atoll up``, ``atoll sim``), never lost.

asyncio's ``loop.add_signal_handler`` learns of a signal from the byte its C-level handler writes
into the loop's self-pipe, the same pipe every ``call_soon_threadsafe`` writes a byte to. A busy
loop with threads finishing work for it (executor futures, the ingest writer) fills that pipe
after a few hundred writes; the signal's byte is then dropped ("Exception ignored when trying to
write to the signal wakeup fd: BlockingIOError"), and the signal with it. ``atoll up`` was seen
ignoring the SIGINT sent after a 10,000-device ``atoll sim`` run until it was killed.

:func:`stop_signals` installs Python-level handlers instead (``signal.signal``): the interpreter
runs them in the main thread whatever any pipe holds. A pipe of their own, watched by the loop,
is the wake-up fd, so a signal also wakes a loop idle in ``select`` whichever thread the kernel
delivered it to; that pipe being full only means the loop has something to read already.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable, Iterator

#: The signals that ask a command to stop.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def stop_signals(loop: asyncio.AbstractEventLoop, handler: Callable[[int], None]) -> Iterator[None]:
    """While inside, SIGINT and SIGTERM call ``handler(signum)`` in the main thread, between two
    bytecodes (as any Python signal handler: keep it short, hand work to the loop with
    ``loop.call_soon_threadsafe``). Must be entered in the main thread; restores the handlers
    and the wake-up fd it found on exit."""
    rfd, wfd = os.pipe()
    os.set_blocking(rfd, False)
    os.set_blocking(wfd, False)

    def drain() -> None:
        with contextlib.suppress(OSError):
            while os.read(rfd, 4096):
                pass

    loop.add_reader(rfd, drain)
    old_fd = signal.set_wakeup_fd(wfd, warn_on_full_buffer=False)
    old = {s: signal.signal(s, lambda signum, frame: handler(signum)) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for s, previous in old.items():
            signal.signal(s, previous)
        signal.set_wakeup_fd(old_fd)
        loop.remove_reader(rfd)
        os.close(rfd)
        os.close(wfd)
