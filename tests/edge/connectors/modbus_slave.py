"""A real pymodbus server with simulated slaves for the Modbus connector's tests: registers the
test writes, a log of the requests it answered, and a switch that makes it answer late."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import tty

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


class SerialLine:
    """A serial line for the ``serial`` link: a pseudo-terminal whose path the connector opens
    as its serial port (pyserial, RTU frames); the other end is relayed to an RTU slave
    server, as a serial-to-Ethernet gateway would."""

    def __init__(self, slaves: Slaves) -> None:
        assert slaves.framer == FramerType.RTU
        self.slaves = slaves
        self.master, self.slave_fd = os.openpty()
        tty.setraw(self.slave_fd)
        self.path = os.ttyname(self.slave_fd)
        self._relay: asyncio.Task | None = None

    async def __aenter__(self) -> SerialLine:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.slaves.port)
        loop = asyncio.get_running_loop()

        def to_server() -> None:
            with contextlib.suppress(OSError):  # EIO while no one has the port open
                writer.write(os.read(self.master, 4096))

        async def to_port() -> None:
            while data := await reader.read(4096):
                os.write(self.master, data)

        loop.add_reader(self.master, to_server)
        self._writer = writer
        self._relay = asyncio.create_task(to_port())
        return self

    async def __aexit__(self, *exc) -> None:
        asyncio.get_running_loop().remove_reader(self.master)
        if self._relay is not None:
            self._relay.cancel()
            await asyncio.gather(self._relay, return_exceptions=True)
        self._writer.close()
        os.close(self.master)
        os.close(self.slave_fd)
