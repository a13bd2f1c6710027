"""A real pymodbus server with simulated slaves for the Modbus connector's tests: registers the
test writes, a log of the requests it answered, and a switch that makes it answer late."""

from __future__ import annotations

import asyncio
import socket

from pymodbus import FramerType
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

HOLDING, INPUT, COIL, DISCRETE = 3, 4, 1, 2  # function codes that read each table


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Slaves:
    """``async with Slaves(ids=(1, 2)) as s: await s.write(1, HOLDING, 0, [7])``"""

    def __init__(self, ids: tuple[int, ...] = (1,), framer: str = "socket") -> None:
        self.ids = ids
        self.framer = FramerType.SOCKET if framer == "socket" else FramerType.RTU
        self.port = free_port()
        self.requests: list[tuple[int, int, int]] = []  # (function code, address, count)
        self.delay_s = 0.0
        self.server: ModbusTcpServer | None = None

    async def _action(self, fc, _start, address, count, _regs, _values):
        self.requests.append((fc, address, count))
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        return None

    async def start(self) -> Slaves:
        devices = [
            SimDevice(
                id=i,
                simdata=(
                    [SimData(0, count=8, values=False, datatype=DataType.BITS)],  # 128 coils
                    [SimData(0, count=8, values=False, datatype=DataType.BITS)],  # discrete
                    [SimData(0, count=200, values=0, datatype=DataType.REGISTERS)],
                    [SimData(0, count=200, values=0, datatype=DataType.REGISTERS)],
                ),
                action=self._action,
            )
            for i in self.ids
        ]
        self.server = ModbusTcpServer(devices, address=("127.0.0.1", self.port), framer=self.framer)
        await self.server.serve_forever(background=True)
        return self

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.shutdown()
            self.server = None

    async def write(self, slave: int, fc: int, address: int, values: list) -> None:
        assert self.server is not None
        assert await self.server.context.async_setValues(slave, fc, address, values) is None

    async def read(self, slave: int, fc: int, address: int, count: int) -> list:
        assert self.server is not None
        return await self.server.context.async_getValues(slave, fc, address, count)

    async def __aenter__(self) -> Slaves:
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.stop()
