"""Time for the rules service, injectable so timers are exact in tests."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now_us(self) -> int:
        """Microseconds since the Unix epoch (UTC)."""


class SystemClock:
    def now_us(self) -> int:
        return time.time_ns() // 1000


class FakeClock:
    """A clock that only moves when told to.

    >>> c = FakeClock(0)
    >>> c.advance(1.5)
    >>> c.now_us()
    1500000
    """

    def __init__(self, start_us: int = 1_700_000_000_000_000) -> None:
        self._now = int(start_us)

    def now_us(self) -> int:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += int(round(seconds * 1_000_000))

    def set(self, now_us: int) -> None:
        self._now = int(now_us)
