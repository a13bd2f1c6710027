"""The connector conformance suite fails connectors that break the port's promises (and passes
one that keeps them): each broken connector below breaks exactly one."""

from __future__ import annotations

import asyncio
import time

import pytest

from atoll.edge.port import BufferStopped, ChildDevice, CommandFailed, EdgeReading
from atoll.testing.connector import check_connector


class Ticker:
    """Reads a counter every 10 ms; ``flaw`` names the promise it breaks."""

    def __init__(self, flaw: str | None = None) -> None:
        self.flaw = flaw
        self.n = 0

    @property
    def name(self) -> str:
        return "ticker"

    def devices(self):
        return [ChildDevice("t-1")]

    async def run(self, sink) -> None:
        try:
            await self._run(sink)
        except asyncio.CancelledError:
            if self.flaw == "slow_to_stop":
                await asyncio.sleep(3.5)  # cleaning up for too long
            raise

    async def _run(self, sink) -> None:
        while True:
            self.n += 1
            ts = time.time_ns() // (1_000_000 if self.flaw == "ms_timestamps" else 1000)
            value = self.n if self.flaw == "int_values" else float(self.n)
            device = "t-2" if self.flaw == "undeclared_device" else "t-1"
            reading = EdgeReading(device, ts, {"n": value})
            while True:
                try:
                    await sink.put([reading])
                    break
                except BufferStopped:
                    if self.flaw == "drops_when_stopped":
                        break
                    await asyncio.sleep(0.01)
            await asyncio.sleep(0.01)

    async def command(self, device, name, args):
        if self.flaw == "accepts_anything":
            return None
        raise CommandFailed(f"no command {name!r} for {device!r}")

    def status(self):
        return {"n": self.n, "since": object()} if self.flaw == "status_not_json" else {"n": self.n}


async def test_a_connector_that_keeps_its_promises_passes():
    readings = await check_connector(Ticker())
    assert [r.values["n"] for r in readings] == sorted(r.values["n"] for r in readings)


@pytest.mark.parametrize(
    ("flaw", "message"),
    [
        ("int_values", "values are float or bool"),
        ("ms_timestamps", "is not µs near now"),
        ("undeclared_device", "undeclared device 't-2'"),
        ("drops_when_stopped", "refused, then never delivered"),
        ("accepts_anything", "did not fail"),
        ("slow_to_stop", "to stop after cancel"),
        ("status_not_json", "not JSON serializable"),
    ],
)
async def test_a_broken_promise_fails_the_suite(flaw, message):
    with pytest.raises((AssertionError, TypeError), match=message):
        await check_connector(Ticker(flaw), timeout=3)
