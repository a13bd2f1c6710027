"""The ``sim`` connector: deterministic simulated machines (tests, benchmarks, the demo).

``children`` child devices (``sim-1`` …) each read ``metrics`` metrics (``m0`` …) every
``1/rate_hz`` seconds, at timestamps on a fixed grid (multiples of the period since the epoch),
so the same configuration gives the same readings wherever it runs; a value follows from its
child, metric and timestamp (``value``), so a receiver can check every reading it got.

When the buffer is full and its policy is ``stop_reading``, the connector keeps the batch it
holds, retries it until the buffer takes it, and skips the ticks that passed meanwhile (it
stopped reading). With ``record`` set, every batch the buffer accepted is appended to that
file as ``first_ts last_ts period_us``: what "the connector side saw", for fault tests.

>>> c = build({"type": "sim", "name": "s", "children": 2, "metrics": 3, "rate_hz": 10})
>>> [d.id for d in c.devices()], c.period_us
(['sim-1', 'sim-2'], 100000)
>>> value(0, 1, 1_795_428_000_100_000) == value(0, 1, 1_795_428_000_100_000)
True
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from atoll.edge.port import BufferStopped, ChildDevice, CommandFailed, EdgeReading, ReadingSink

#: At most this many readings in one put.
MAX_PUT = 5000


class SimSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["sim"] = "sim"
    name: str
    children: int = Field(default=3, ge=1, le=100_000)
    metrics: int = Field(default=2, ge=1, le=1000)
    rate_hz: float = Field(default=1.0, gt=0, le=100_000)
    prefix: str = Field(default="sim-", pattern=r"^[A-Za-z0-9_.:-]*$")
    device_type: str | None = None
    record: Path | None = None
    tick_s: float = Field(default=0.05, gt=0, le=10)


def value(child: int, metric: int, ts_us: int) -> float:
    """The value of metric ``metric`` of child number ``child`` (from 0) at ``ts_us``."""
    return ((ts_us // 1000) * (child + 1) + 7919 * metric) % 100_000 / 100


def child_index(device: str, prefix: str = "sim-") -> int:
    return int(device[len(prefix) :]) - 1


class SimConnector:
    def __init__(self, settings: SimSettings) -> None:
        self.settings = settings
        self.period_us = max(1, round(1_000_000 / settings.rate_hz))
        self._ids = [f"{settings.prefix}{i + 1}" for i in range(settings.children)]
        self._metrics = [f"m{j}" for j in range(settings.metrics)]
        self.readings = 0
        self.puts = 0
        self.stopped = 0
        self.running = False

    @property
    def name(self) -> str:
        return self.settings.name

    def devices(self) -> Sequence[ChildDevice]:
        return [ChildDevice(d, self.settings.device_type) for d in self._ids]

    def _batch(self, k0: int, k1: int) -> list[EdgeReading]:
        out = []
        for k in range(k0, k1 + 1):
            ts = k * self.period_us
            for i, dev in enumerate(self._ids):
                vals = {m: value(i, j, ts) for j, m in enumerate(self._metrics)}
                out.append(EdgeReading(dev, ts, vals))
        return out

    async def run(self, sink: ReadingSink) -> None:
        period = self.period_us
        max_ticks = max(1, MAX_PUT // len(self._ids))
        record = open(self.settings.record, "a") if self.settings.record else None  # noqa: SIM115
        self.running = True
        try:
            k = time.time_ns() // 1000 // period + 1
            while True:
                now_k = time.time_ns() // 1000 // period
                if now_k < k:
                    await asyncio.sleep(min(self.settings.tick_s, (k - now_k) * period / 1e6))
                    continue
                k1 = min(now_k, k + max_ticks - 1)
                batch = self._batch(k, k1)
                stops = self.stopped
                while True:
                    try:
                        await sink.put(batch)
                        break
                    except BufferStopped:
                        self.stopped += 1
                        await asyncio.sleep(0.2)
                if record is not None:
                    record.write(f"{k * period} {k1 * period} {period}\n")
                    record.flush()
                self.readings += len(batch)
                self.puts += 1
                # After a stop, the ticks that passed meanwhile were not read.
                k = k1 + 1 if stops == self.stopped else time.time_ns() // 1000 // period + 1
        finally:
            self.running = False
            if record is not None:
                record.close()

    async def command(self, device: str, name: str, args: Mapping[str, Any]) -> Any:
        if device not in self._ids:
            raise CommandFailed(f"{device} is not a device of connector {self.name}")
        if name == "ping":
            return {"device": device, "args": dict(args)}
        raise CommandFailed(f"unknown command {name!r}: the sim connector answers 'ping'")

    def status(self) -> Mapping[str, Any]:
        return {
            "type": "sim",
            "running": self.running,
            "children": len(self._ids),
            "readings": self.readings,
            "puts": self.puts,
            "stopped": self.stopped,
        }


def build(config: Mapping[str, Any]) -> SimConnector:
    return SimConnector(SimSettings.model_validate(dict(config)))
