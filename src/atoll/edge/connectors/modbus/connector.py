"""The Modbus connector: polls each device's poll groups, one request per block, and writes
points on command. One link (a TCP connection or a serial line) is shared by every slave on
it, one request at a time (a serial bus cannot do more, and small PLCs prefer it on TCP too).

A reading's time is when its poll started (Modbus carries no timestamps), as µs UTC. Lost
connections are reconnected with an exponential back-off between ``reconnect_min_s`` and
``reconnect_max_s``, and after a timeout the link is reopened, so that a late answer cannot
pass for the next request's. Per-slave counters (reads, writes, timeouts, exception responses,
errors, reconnects) and the link's (connects, reconnects, failures) are in ``status()``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from pymodbus import FramerType
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.pdu import ModbusPDU

from atoll.core.time import NS, to_us
from atoll.edge.connectors.commands import check_command, device_of
from atoll.edge.connectors.delivery import Delivery
from atoll.edge.connectors.modbus.config import Device, ModbusConfig, TcpLink
from atoll.edge.connectors.modbus.plan import Block, Group, groups
from atoll.edge.connectors.modbus.registers import (
    WIDTH,
    decode,
    encode,
    engineering,
    to_raw,
)
from atoll.edge.port import ChildDevice, CommandFailed, EdgeReading, ReadingSink, Value

log = logging.getLogger(__name__)

_EXCEPTIONS = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "slave device failure",
    5: "acknowledge",
    6: "slave device busy",
    10: "gateway path unavailable",
    11: "gateway target device failed to respond",
}


class RequestFailed(Exception):
    """One request got no usable answer (already counted)."""


class _SlaveCounters:
    def __init__(self, slave: int) -> None:
        self.slave = slave
        self.reads = 0
        self.writes = 0
        self.timeouts = 0
        self.exceptions = 0
        self.errors = 0
        self.reconnects = 0  # link reopenings after a request to this slave failed
        self.last_error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(vars(self))


class ModbusConnector:
    def __init__(self, config: ModbusConfig) -> None:
        self.config = config
        self._devices = {d.id: d for d in config.devices}
        self._groups: list[Group] = [
            g
            for d in config.devices
            for g in groups(d, max_registers=config.max_registers, max_gap=config.max_gap)
        ]
        self._counters = {d.id: _SlaveCounters(d.slave) for d in config.devices}
        self._client: AsyncModbusTcpClient | AsyncModbusSerialClient | None = None
        self._lock = asyncio.Lock()
        self._was_connected = False
        self._reopen_for: _SlaveCounters | None = None  # whose failed request closed the link
        self._backoff = config.reconnect_min_s
        self._next_attempt = 0.0
        self.connects = 0
        self.reconnects = 0
        self.connect_failures = 0
        self._delivery: Delivery | None = None

    @property
    def name(self) -> str:
        return self.config.name

    def devices(self) -> Sequence[ChildDevice]:
        return [
            ChildDevice(d.id, d.device_type, {"protocol": "modbus", "slave": d.slave})
            for d in self.config.devices
        ]

    async def run(self, sink: ReadingSink) -> None:
        self._delivery = Delivery(sink, retry_s=self.config.buffer_retry_s)
        try:
            async with asyncio.TaskGroup() as tasks:
                for group in self._groups:
                    tasks.create_task(self._poll(group, self._delivery))
        finally:
            self._close()

    async def _poll(self, group: Group, delivery: Delivery) -> None:
        due = time.monotonic()
        while True:
            ts_us = to_us(time.time_ns(), NS)
            values: dict[str, Value] = {}
            for block in group.blocks:
                try:
                    values.update(await self._read(group.device, block))
                except RequestFailed:
                    continue  # counted; the other blocks may still answer
            if values:
                await delivery.put([EdgeReading(group.device.id, ts_us, values)])
            due += group.interval_s
            now = time.monotonic()
            if due < now:  # late (a slow slave, a full buffer): skip the missed polls
                due = now
            await asyncio.sleep(due - now)

    async def _read(self, device: Device, block: Block) -> dict[str, Value]:
        slave = device.slave

        def request(c: AsyncModbusTcpClient | AsyncModbusSerialClient) -> Awaitable[ModbusPDU]:
            if block.table == "holding":
                return c.read_holding_registers(block.start, count=block.count, device_id=slave)
            if block.table == "input":
                return c.read_input_registers(block.start, count=block.count, device_id=slave)
            if block.table == "coil":
                return c.read_coils(block.start, count=block.count, device_id=slave)
            return c.read_discrete_inputs(block.start, count=block.count, device_id=slave)

        answer = await self._request(device, request)
        self._counters[device.id].reads += 1
        out: dict[str, Value] = {}
        for p in block.points:
            at = p.address - block.start
            if block.table in ("coil", "discrete"):
                out[p.name] = bool(answer.bits[at])
                continue
            raw = decode(
                answer.registers[at : at + WIDTH[p.type]], p.type, p.byte_order, p.word_order
            )
            out[p.name] = engineering(raw, scale=p.scale, offset=p.offset)
        return out

    async def _request(
        self,
        device: Device,
        send: Callable[[AsyncModbusTcpClient | AsyncModbusSerialClient], Awaitable[ModbusPDU]],
    ) -> ModbusPDU:
        counters = self._counters[device.id]
        async with self._lock:
            client = await self._connected()
            try:
                answer = await send(client)
            except ModbusIOException as e:
                counters.timeouts += 1
                counters.last_error = f"no answer from slave {device.slave}: {e}"
                # A late answer could pass for the next request's: seen with pymodbus on TCP
                # too, and an RTU frame has no transaction id at all. A new link drops it.
                self._close(blame=counters)
                raise RequestFailed(counters.last_error) from e
            except (ConnectionException, ModbusException, OSError) as e:
                counters.errors += 1
                counters.last_error = f"link error: {e}"
                self._close(blame=counters)
                raise RequestFailed(counters.last_error) from e
        if answer.isError():
            counters.exceptions += 1
            code = getattr(answer, "exception_code", 0)
            counters.last_error = (
                f"slave {device.slave} answered exception {code} "
                f"({_EXCEPTIONS.get(code, 'unknown')})"
            )
            raise RequestFailed(counters.last_error)
        return answer

    async def _connected(self) -> AsyncModbusTcpClient | AsyncModbusSerialClient:
        """The open client, connecting first (with back-off) when there is none."""
        if self._client is not None and self._client.connected:
            return self._client
        self._close()
        now = time.monotonic()
        if now < self._next_attempt:
            raise RequestFailed("not connected (waiting to reconnect)")
        client = self._new_client()
        try:
            ok = await client.connect()
        except (ModbusException, OSError) as e:
            log.debug("modbus connect failed: %s", e)
            ok = False
        if not ok:
            client.close()
            self.connect_failures += 1
            self._next_attempt = now + self._backoff
            self._backoff = min(self._backoff * 2, self.config.reconnect_max_s)
            raise RequestFailed(f"cannot connect to {self.config.link.describe()}")
        self.connects += 1
        if self._was_connected:
            self.reconnects += 1
            if self._reopen_for is not None:
                self._reopen_for.reconnects += 1
        self._reopen_for = None
        self._was_connected = True
        self._backoff = self.config.reconnect_min_s
        self._client = client
        return client

    def _new_client(self) -> AsyncModbusTcpClient | AsyncModbusSerialClient:
        link, cfg = self.config.link, self.config
        # reconnect_delay=0: pymodbus does not reconnect by itself; _connected does, counted.
        if isinstance(link, TcpLink):
            return AsyncModbusTcpClient(
                link.host,
                port=link.port,
                framer=FramerType.SOCKET if link.framer == "socket" else FramerType.RTU,
                timeout=cfg.timeout_s,
                retries=cfg.retries,
                reconnect_delay=0,
            )
        return AsyncModbusSerialClient(
            link.device,
            framer=FramerType.RTU,
            baudrate=link.baudrate,
            bytesize=link.bytesize,
            parity=link.parity,
            stopbits=link.stopbits,
            timeout=cfg.timeout_s,
            retries=cfg.retries,
            reconnect_delay=0,
        )

    def _close(self, blame: _SlaveCounters | None = None) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if blame is not None:
            self._reopen_for = blame

    async def command(self, device: str, name: str, args: Mapping[str, Any]) -> Any:
        dev = device_of(self._devices, device, f"Modbus connector {self.name!r}")
        check_command(device, name, dev.commands)
        cmd = dev.commands[name]
        value = args.get("value") if isinstance(args, Mapping) else None
        if isinstance(value, bool):
            value = float(value)
        if not isinstance(value, int | float):
            raise CommandFailed(f"{name}: args must be {{'value': <number>}}, got {args!r}")
        if cmd.min is not None and value < cmd.min:
            raise CommandFailed(f"{name}: {value} is below the minimum {cmd.min}")
        if cmd.max is not None and value > cmd.max:
            raise CommandFailed(f"{name}: {value} is above the maximum {cmd.max}")
        point = dev.point(cmd.point)
        slave = dev.slave
        if point.table == "coil":
            bit = value != 0

            def send(c: Any) -> Awaitable[ModbusPDU]:
                return c.write_coil(point.address, bit, device_id=slave)

            raw: int | float | bool = bit
        else:
            try:
                raw = to_raw(value, point.type, scale=point.scale, offset=point.offset)
            except ValueError as e:
                raise CommandFailed(f"{name}: {e}") from None
            regs = encode(raw, point.type, point.byte_order, point.word_order)

            def send(c: Any) -> Awaitable[ModbusPDU]:
                if len(regs) == 1:
                    return c.write_register(point.address, regs[0], device_id=slave)
                return c.write_registers(point.address, regs, device_id=slave)

        try:
            await self._request(dev, send)
        except RequestFailed as e:
            raise CommandFailed(f"{name}: {e}") from None
        self._counters[dev.id].writes += 1
        return {"point": point.name, "value": value, "raw": raw}

    def status(self) -> Mapping[str, Any]:
        delivery = self._delivery
        return {
            "link": self.config.link.describe(),
            "connected": self._client is not None and self._client.connected,
            "connects": self.connects,
            "reconnects": self.reconnects,
            "connect_failures": self.connect_failures,
            "readings": delivery.readings if delivery else 0,
            "buffer_stopped_waits": delivery.stopped_waits if delivery else 0,
            "slaves": {d: c.as_dict() for d, c in self._counters.items()},
        }
