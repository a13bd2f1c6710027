"""Handing readings to the sink without ever dropping them.

``ReadingSink.put`` raises ``BufferStopped`` when the buffer is full and its policy is to stop
reading: the connector then waits and offers the same readings again, for as long as it takes.
Meanwhile it reads nothing new (a polling connector skips its polls, a subscribing one leaves
its source's messages unacknowledged), which is what "stop reading" means.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from atoll.edge.port import BufferStopped, EdgeReading, ReadingSink


class Delivery:
    """``await delivery.put(readings)`` returns once the sink took them; counts the waits."""

    def __init__(self, sink: ReadingSink, *, retry_s: float = 0.5) -> None:
        self.sink = sink
        self.retry_s = retry_s
        self.readings = 0  # readings the sink took
        self.stopped_waits = 0  # times the sink said BufferStopped

    async def put(self, readings: Sequence[EdgeReading]) -> None:
        if not readings:
            return
        while True:
            try:
                await self.sink.put(readings)
            except BufferStopped:
                self.stopped_waits += 1
                await asyncio.sleep(self.retry_s)
                continue
            self.readings += len(readings)
            return
