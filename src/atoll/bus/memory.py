"""In-process ``MessageBus``: the embedded default.

Each subscription owns a queue and one task, so a slow subscriber never blocks the publisher
or other subscribers, and every subscriber sees messages in publish order. Queues are
unbounded on purpose: a handler that publishes to a subject it is subscribed to must not
deadlock itself.
"""

from __future__ import annotations

import asyncio
import itertools
import logging

from atoll.bus.port import Handler, Message, subject_matches

log = logging.getLogger(__name__)


class _Sub:
    __slots__ = ("bus", "group", "handler", "pattern", "queue", "task")

    def __init__(self, bus: MemoryBus, pattern: str, handler: Handler, group: str | None) -> None:
        self.bus = bus
        self.pattern = pattern
        self.handler = handler
        self.group = group
        self.queue: asyncio.Queue[Message] = asyncio.Queue()
        self.task = asyncio.create_task(self._run(), name=f"bus-sub:{pattern}")

    async def _run(self) -> None:
        while True:
            msg = await self.queue.get()
            try:
                await self.handler(msg)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("bus subscriber %s failed on %s", self.pattern, msg.subject)

    async def unsubscribe(self) -> None:
        self.bus._remove(self)
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


class MemoryBus:
    def __init__(self) -> None:
        self._subs: list[_Sub] = []
        self._rr = itertools.count()
        self._closed = False

    def max_payload(self) -> int | None:
        return None  # in-process: any size

    async def publish(self, subject: str, data: bytes) -> None:
        if self._closed:
            raise RuntimeError("bus is closed")
        msg = Message(subject, bytes(data))
        groups: dict[tuple[str, str], list[_Sub]] = {}
        for s in self._subs:
            if not subject_matches(s.pattern, subject):
                continue
            if s.group is None:
                s.queue.put_nowait(msg)
            else:
                groups.setdefault((s.pattern, s.group), []).append(s)
        for members in groups.values():
            members[next(self._rr) % len(members)].queue.put_nowait(msg)

    async def subscribe(self, subject: str, handler: Handler, *, group: str | None = None) -> _Sub:
        if self._closed:
            raise RuntimeError("bus is closed")
        sub = _Sub(self, subject, handler, group)
        self._subs.append(sub)
        return sub

    def _remove(self, sub: _Sub) -> None:
        if sub in self._subs:
            self._subs.remove(sub)

    async def close(self) -> None:
        self._closed = True
        subs, self._subs = self._subs, []
        for s in subs:
            s.task.cancel()
        await asyncio.gather(*(s.task for s in subs), return_exceptions=True)
