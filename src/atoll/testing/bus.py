"""Conformance suite for ``MessageBus`` adapters.

>>> # in a test:  await check_bus(MemoryBus())
"""

from __future__ import annotations

import asyncio
import uuid

from atoll.bus.port import Message, MessageBus


class _Inbox:
    def __init__(self) -> None:
        self.got: list[Message] = []
        self._changed = asyncio.Event()

    async def __call__(self, msg: Message) -> None:
        self.got.append(msg)
        self._changed.set()

    async def wait_for(self, n: int, timeout: float = 5.0) -> list[Message]:
        async def _wait() -> None:
            while len(self.got) < n:
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(_wait(), timeout)
        return self.got


async def _settle(seconds: float = 0.2) -> None:
    await asyncio.sleep(seconds)


async def check_bus(bus: MessageBus, *, root: str | None = None) -> None:
    """Run every check against ``bus``; raises ``AssertionError`` on the first failure.

    Subjects are unique per run (all under ``root``, random by default), so a shared server
    (e.g. NATS) can be used; a bus that only carries configured subjects (a JetStream stream)
    is given a ``root`` it carries.
    """
    assert isinstance(bus, MessageBus)
    root = root or "t" + uuid.uuid4().hex[:12]
    await _check_exact_in_order(bus, root)
    await _check_wildcards(bus, root)
    await _check_groups(bus, root)
    await _check_unsubscribe(bus, root)
    await _check_failing_handler(bus, root)
    await _check_max_payload(bus, root)


async def _check_max_payload(bus: MessageBus, root: str) -> None:
    """A message of ``max_payload()`` bytes goes through (``None``: 1 MB does)."""
    limit = bus.max_payload()
    assert limit is None or (isinstance(limit, int) and limit > 0), f"max_payload {limit!r}"
    size = (limit or 1 << 20) - 1024  # JetStream may add headers within the server's limit
    inbox = _Inbox()
    sub = await bus.subscribe(f"{root}.big", inbox)
    await bus.publish(f"{root}.big", b"x" * size)
    got = await inbox.wait_for(1)
    assert len(got[0].data) == size
    await sub.unsubscribe()


async def _check_exact_in_order(bus: MessageBus, root: str) -> None:
    inbox = _Inbox()
    sub = await bus.subscribe(f"{root}.a.b", inbox)
    for i in range(100):
        await bus.publish(f"{root}.a.b", str(i).encode())
    await bus.publish(f"{root}.a.c", b"other")
    got = await inbox.wait_for(100)
    await _settle()
    assert [m.data for m in got] == [str(i).encode() for i in range(100)], "order or extra messages"
    assert all(m.subject == f"{root}.a.b" for m in got)
    await sub.unsubscribe()


async def _check_wildcards(bus: MessageBus, root: str) -> None:
    star, tail = _Inbox(), _Inbox()
    s1 = await bus.subscribe(f"{root}.w.*", star)
    s2 = await bus.subscribe(f"{root}.w.>", tail)
    await bus.publish(f"{root}.w.x", b"1")
    await bus.publish(f"{root}.w.x.y", b"2")
    await bus.publish(f"{root}.v.x", b"3")
    await tail.wait_for(2)
    await star.wait_for(1)
    await _settle()
    assert [m.data for m in star.got] == [b"1"]
    assert sorted(m.data for m in tail.got) == [b"1", b"2"]
    await s1.unsubscribe()
    await s2.unsubscribe()


async def _check_groups(bus: MessageBus, root: str) -> None:
    g1, g2, solo = _Inbox(), _Inbox(), _Inbox()
    subs = [
        await bus.subscribe(f"{root}.g.>", g1, group="workers"),
        await bus.subscribe(f"{root}.g.>", g2, group="workers"),
        await bus.subscribe(f"{root}.g.>", solo),
    ]
    n = 200
    for i in range(n):
        await bus.publish(f"{root}.g.{i % 7}", str(i).encode())
    await solo.wait_for(n)

    async def _both() -> None:
        while len(g1.got) + len(g2.got) < n:
            await asyncio.sleep(0.01)

    await asyncio.wait_for(_both(), 5)
    await _settle()
    shared = sorted(int(m.data) for m in g1.got + g2.got)
    assert shared == list(range(n)), "a group must get every message exactly once"
    for s in subs:
        await s.unsubscribe()


async def _check_unsubscribe(bus: MessageBus, root: str) -> None:
    inbox = _Inbox()
    sub = await bus.subscribe(f"{root}.u", inbox)
    await bus.publish(f"{root}.u", b"before")
    await inbox.wait_for(1)
    await sub.unsubscribe()
    await bus.publish(f"{root}.u", b"after")
    await _settle()
    assert [m.data for m in inbox.got] == [b"before"]


async def _check_failing_handler(bus: MessageBus, root: str) -> None:
    inbox = _Inbox()

    async def flaky(msg: Message) -> None:
        if msg.data == b"boom":
            raise RuntimeError("handler failure must not kill the subscription")
        await inbox(msg)

    sub = await bus.subscribe(f"{root}.f", flaky)
    for d in (b"1", b"boom", b"2"):
        await bus.publish(f"{root}.f", d)
    got = await inbox.wait_for(2)
    assert [m.data for m in got] == [b"1", b"2"]
    await sub.unsubscribe()
