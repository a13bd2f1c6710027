"""Conformance suite for edge connectors (``atoll.edge.port.Connector``), and an in-memory
``ReadingSink`` to run them against.

``await check_connector(connector, produce=...)`` runs the connector against a real server the
caller started and checks the port's promises: declared devices, readings in Atoll's types (µs
timestamps, float or bool values) from declared devices only, a JSON-serialisable ``status()``,
``CommandFailed`` for an unknown device or command, no reading lost while the sink says
``BufferStopped``, and a prompt stop on cancel. It returns what the sink took, for the caller's
own checks of values.

>>> import asyncio
>>> sink = MemorySink()
>>> asyncio.run(sink.put([EdgeReading("d", 1, {"x": 1.0})])); len(sink.readings)
1
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Sequence

from atoll.edge.port import (
    BufferStopped,
    ChildDevice,
    CommandFailed,
    Connector,
    EdgeReading,
)

_DAY_US = 86_400_000_000


class MemorySink:
    """Keeps what it is given; while ``stopped`` it refuses with ``BufferStopped`` (as a full
    buffer with the stop-reading policy does) and remembers what it refused."""

    def __init__(self) -> None:
        self.readings: list[EdgeReading] = []
        self.refused: list[EdgeReading] = []
        self.stopped = False
        self.changed = asyncio.Event()

    async def put(self, readings: Sequence[EdgeReading]) -> None:
        if self.stopped:
            self.refused += readings
            raise BufferStopped("memory sink stopped")
        self.readings += readings
        self.changed.set()

    async def wait_for(
        self,
        done: Callable[[list[EdgeReading]], bool],
        timeout: float,
        produce: Callable[[], Awaitable[None]] | None = None,
    ) -> list[EdgeReading]:
        """Wait until ``done(self.readings)``, calling ``produce`` now and then meanwhile."""
        deadline = time.monotonic() + timeout
        while not done(self.readings):
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out after {timeout}s; sink has {len(self.readings)} readings: "
                    f"{self.readings[-3:]}"
                )
            if produce is not None:
                await produce()
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), 0.1)
            except TimeoutError:
                pass
        return self.readings


def _check_reading(r: EdgeReading, known: set[str]) -> None:
    assert isinstance(r, EdgeReading), r
    assert r.device in known, f"reading from undeclared device {r.device!r} (known {known})"
    assert type(r.ts_us) is int, f"ts_us must be an int of µs, got {r.ts_us!r}"
    now = time.time_ns() // 1000
    assert abs(r.ts_us - now) < _DAY_US, f"ts_us {r.ts_us} is not µs near now ({now})"
    assert r.values, f"reading without values: {r}"
    for k, v in r.values.items():
        assert isinstance(k, str) and k, r
        assert type(v) in (float, bool), f"{r.device}.{k} = {v!r}: values are float or bool"


async def check_connector(
    connector: Connector,
    *,
    produce: Callable[[], Awaitable[None]] | None = None,
    min_readings: int = 3,
    timeout: float = 15.0,
) -> list[EdgeReading]:
    """Run ``connector`` against its (real, running) server and check the port's promises.

    ``produce`` makes the server or its devices emit something new (for connectors that only
    hear about changes); it is awaited repeatedly while readings are awaited."""
    assert isinstance(connector.name, str) and connector.name
    devices = connector.devices()
    assert devices and all(isinstance(d, ChildDevice) for d in devices), devices
    ids = [d.id for d in devices]
    assert len(set(ids)) == len(ids), f"device ids twice: {ids}"
    json.dumps(connector.status())

    sink = MemorySink()
    task = asyncio.create_task(connector.run(sink))
    try:
        await sink.wait_for(lambda rs: len(rs) >= min_readings, timeout, produce)
        for r in sink.readings:
            _check_reading(r, set(ids))
        json.dumps(connector.status())

        # unknown device, unknown command: CommandFailed with a reason
        for device, name in (("no-such-device-xyz", "noop"), (ids[0], "no_such_command_xyz")):
            try:
                await connector.command(device, name, {})
            except CommandFailed as e:
                assert str(e), "CommandFailed needs a reason"
            else:
                raise AssertionError(f"command({device!r}, {name!r}) did not fail")

        # a full buffer that stops reading: nothing refused is lost, readings resume after
        sink.stopped = True
        await sink.wait_for(lambda _: len(sink.refused) >= 2, timeout, produce)
        taken = len(sink.readings)
        sink.stopped = False
        refused = list(sink.refused)

        def all_delivered(rs: list[EdgeReading]) -> bool:
            return all(r in rs[taken:] for r in refused) and len(rs) > taken + len(set(ids))

        try:
            await sink.wait_for(all_delivered, timeout, produce)
        except AssertionError:
            lost = [r for r in refused if r not in sink.readings[taken:]]
            raise AssertionError(f"refused, then never delivered: {lost}") from None
        assert not task.done(), "run() ended while the buffer was stopped"
    finally:
        started = time.monotonic()
        task.cancel()
        try:
            await asyncio.wait_for(task, 5.0)
        except asyncio.CancelledError:
            pass
        stop_s = time.monotonic() - started
    assert stop_s < 3.0, f"run() took {stop_s:.1f}s to stop after cancel"
    json.dumps(connector.status())
    return sink.readings
