"""The sim connector: deterministic readings on a grid, retries a full buffer, records."""

from __future__ import annotations

import asyncio

import pytest

from atoll.edge.connectors.sim import build, value
from atoll.edge.port import BufferStopped, CommandFailed


class Sink:
    def __init__(self, refuse: int = 0) -> None:
        self.got = []
        self.refuse = refuse

    async def put(self, readings):
        if self.refuse:
            self.refuse -= 1
            raise BufferStopped("full")
        self.got.extend(readings)


def test_readings_on_the_grid_with_values_from_child_metric_ts(tmp_path):
    c = build(
        {
            "type": "sim",
            "name": "s",
            "children": 3,
            "metrics": 2,
            "rate_hz": 100,
            "record": str(tmp_path / "rec"),
        }
    )
    sink = Sink(refuse=2)

    async def main():
        t = asyncio.create_task(c.run(sink))
        await asyncio.sleep(1.0)
        t.cancel()

    asyncio.run(main())
    assert c.stopped == 2 and len(sink.got) > 100
    for r in sink.got:
        assert r.ts_us % 10_000 == 0
        i = int(r.device.split("-")[1]) - 1
        assert r.values == {"m0": value(i, 0, r.ts_us), "m1": value(i, 1, r.ts_us)}
    per_dev = {}
    for r in sink.got:
        per_dev.setdefault(r.device, []).append(r.ts_us)
    for tss in per_dev.values():
        assert tss == sorted(set(tss))
    recorded = 0
    for line in (tmp_path / "rec").read_text().splitlines():
        first, last, period = map(int, line.split())
        recorded += ((last - first) // period + 1) * 3
    assert recorded == len(sink.got) == c.readings


def test_commands():
    c = build({"type": "sim", "name": "s", "children": 1})
    assert asyncio.run(c.command("sim-1", "ping", {"a": 1})) == {
        "device": "sim-1",
        "args": {"a": 1},
    }
    with pytest.raises(CommandFailed):
        asyncio.run(c.command("sim-1", "reboot", {}))
    with pytest.raises(CommandFailed):
        asyncio.run(c.command("sim-9", "ping", {}))
