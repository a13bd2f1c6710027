"""Shared pieces for the rules tests: a recording channel type, a service on a memory bus."""

from __future__ import annotations

import asyncio
from collections import defaultdict

import pytest
from pydantic import BaseModel

from atoll.bus.memory import MemoryBus
from atoll.ingest.events import encode_telemetry
from atoll.rules.channels import ChannelType, Notification, register_channel_type
from atoll.rules.clock import FakeClock
from atoll.rules.model import ChannelSpec
from atoll.rules.service import RulesService

T0 = 1_800_000_000_000_000  # µs

SENT: dict[str, list[Notification]] = defaultdict(list)


class RecorderConfig(BaseModel):
    box: str


class Recorder:
    """A plug-in channel type registered by the tests, like a third-party one would be."""

    def __init__(self, config: RecorderConfig, ctx) -> None:
        self.box = config.box

    async def send(self, note: Notification) -> int:
        SENT[self.box].append(note)
        return 1


register_channel_type(ChannelType("recorder", RecorderConfig, Recorder))


class Harness:
    def __init__(self, svc: RulesService, bus: MemoryBus, clock: FakeClock, box: str) -> None:
        self.svc, self.bus, self.clock, self.box = svc, bus, clock, box
        self.events: list[dict] = []

    @property
    def sent(self) -> list[Notification]:
        return SENT[self.box]

    async def send(self, device: str, at_s: float = 0, project: str = "p", **values: float) -> None:
        """Publish one reading as ingest does and wait until the service has handled it."""
        self.clock.set(T0 + int(at_s * 1e6))
        before = self.svc.stats["readings"]
        metrics = list(values)
        await self.bus.publish(
            f"telemetry.{project}.{device}",
            encode_telemetry(
                project,
                device,
                metrics,
                list(range(len(metrics))),
                [self.clock.now_us()] * len(metrics),
                [float(v) for v in values.values()],
            ),
        )
        for _ in range(5000):  # up to 5 s on a loaded CI box; usually a few ms
            if self.svc.stats["readings"] > before:
                break
            await asyncio.sleep(0.001)
        await self.svc.notifier.drain()
        await asyncio.sleep(0)

    async def tick_at(self, now_us: int) -> None:
        self.clock.set(now_us)
        await self.svc.tick()
        await self.svc.notifier.drain()

    async def tick(self, at_s: float) -> None:
        self.clock.set(T0 + int(at_s * 1e6))
        await self.svc.tick()
        await self.svc.notifier.drain()


@pytest.fixture
async def harness(request):
    bus = MemoryBus()
    clock = FakeClock(T0)
    svc = RulesService(bus, clock=clock, tick_interval=0)
    box = request.node.nodeid
    SENT.pop(box, None)
    svc.put_channel(ChannelSpec(name="ops", project="p", type="recorder", config={"box": box}))
    svc.put_channel(
        ChannelSpec(name="boss", project="p", type="recorder", config={"box": box + "#boss"})
    )
    await svc.start()
    h = Harness(svc, bus, clock, box)

    async def grab(msg):
        import orjson

        h.events.append(orjson.loads(msg.data))

    await bus.subscribe("alarm.>", grab)
    yield h
    await svc.stop()
    await bus.close()
