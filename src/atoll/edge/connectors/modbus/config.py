"""The Modbus connector's configuration (validated by ``build``; see docs/EDGE_CONNECTORS.md).

>>> cfg = ModbusConfig.model_validate({
...     "link": {"type": "tcp", "host": "10.0.0.5"},
...     "devices": [{"id": "meter-1", "slave": 1, "points": [
...         {"name": "voltage", "address": 0, "type": "uint16", "scale": 0.1}]}]})
>>> cfg.link.port, cfg.devices[0].points[0].table
(502, 'holding')
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from atoll.edge.connectors.modbus.registers import WIDTH, DataType, Order

Table = Literal["holding", "input", "coil", "discrete"]
_BIT_TABLES = {"coil", "discrete"}
_WRITABLE = {"holding", "coil"}
_ID = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TcpLink(_Strict):
    """Modbus TCP; ``framer: rtu`` for RTU frames over a TCP serial gateway."""

    type: Literal["tcp"]
    host: str = Field(min_length=1)
    port: int = Field(default=502, ge=1, le=65535)
    framer: Literal["socket", "rtu"] = "socket"

    def describe(self) -> str:
        return f"{'tcp' if self.framer == 'socket' else 'rtu-over-tcp'}://{self.host}:{self.port}"


class SerialLink(_Strict):
    """Modbus RTU on a serial port (RS-485 adapters on a gateway)."""

    type: Literal["serial"]
    device: str = Field(min_length=1, examples=["/dev/ttyUSB0"])
    baudrate: int = Field(default=9600, gt=0)
    parity: Literal["N", "E", "O"] = "N"
    bytesize: Literal[7, 8] = 8
    stopbits: Literal[1, 2] = 1

    def describe(self) -> str:
        return f"rtu://{self.device}@{self.baudrate}"


class Point(_Strict):
    """One value in a slave's register map: ``raw * scale + offset`` is what Atoll stores."""

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.]{0,63}$")
    table: Table = "holding"
    address: int = Field(ge=0, le=65535)
    type: DataType = "uint16"
    byte_order: Order = "big"
    word_order: Order = "big"
    scale: float = 1.0
    offset: float = 0.0
    poll_interval_s: float | None = Field(default=None, ge=0.01)  # the device's when unset

    @model_validator(mode="after")
    def _fits(self) -> Point:
        if self.table in _BIT_TABLES and self.type != "bool":
            raise ValueError(f"point {self.name!r}: a {self.table} table holds bits: use type bool")
        if self.scale == 0:
            raise ValueError(f"point {self.name!r}: scale must not be 0")
        if self.address + WIDTH[self.type] > 65536:
            raise ValueError(f"point {self.name!r}: {self.type} at {self.address} ends past 65535")
        return self


class Command(_Strict):
    """A platform command that writes one point, ``{"value": x}`` in engineering units."""

    point: str
    min: float | None = None
    max: float | None = None


class Device(_Strict):
    """One slave (unit id) behind the link, as one child device of the gateway."""

    id: str = Field(pattern=_ID)
    device_type: str | None = None
    slave: int = Field(default=1, ge=0, le=255)  # the unit id; 1-247 on a serial line
    poll_interval_s: float = Field(default=1.0, ge=0.01)
    points: list[Point] = Field(min_length=1)
    commands: dict[str, Command] = {}

    @model_validator(mode="after")
    def _consistent(self) -> Device:
        names = [p.name for p in self.points]
        if dupes := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"device {self.id!r}: point names used twice: {dupes}")
        by_name = {p.name: p for p in self.points}
        for cmd_name, cmd in self.commands.items():
            point = by_name.get(cmd.point)
            if point is None:
                raise ValueError(
                    f"device {self.id!r}: command {cmd_name!r} writes unknown point {cmd.point!r}"
                )
            if point.table not in _WRITABLE:
                raise ValueError(
                    f"device {self.id!r}: command {cmd_name!r} writes {cmd.point!r}, "
                    f"but {point.table} is read-only in Modbus (write holding or coil)"
                )
        return self

    def point(self, name: str) -> Point:
        return next(p for p in self.points if p.name == name)


class ModbusConfig(_Strict):
    #: the entry's type in the agent's ``connectors`` list (docs/EDGE.md)
    type: Literal["modbus"] = "modbus"
    name: str = Field(default="modbus", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    link: Annotated[TcpLink | SerialLink, Field(discriminator="type")]
    timeout_s: float = Field(default=1.0, gt=0)
    retries: int = Field(default=0, ge=0, le=5)
    reconnect_min_s: float = Field(default=0.5, gt=0)
    reconnect_max_s: float = Field(default=30.0, gt=0)
    max_registers: int = Field(default=125, ge=1, le=125)  # per read (the protocol's limit)
    max_gap: int = Field(default=0, ge=0, le=32)  # registers read past to merge two blocks
    buffer_retry_s: float = Field(default=0.5, gt=0)
    devices: list[Device] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> ModbusConfig:
        ids = [d.id for d in self.devices]
        if dupes := sorted({i for i in ids if ids.count(i) > 1}):
            raise ValueError(f"device ids used twice: {dupes}")
        if isinstance(self.link, SerialLink):
            for d in self.devices:
                if not 1 <= d.slave <= 247:
                    raise ValueError(
                        f"device {d.id!r}: slave {d.slave} on a serial line must be 1 to 247 "
                        "(0 is broadcast, which nothing answers)"
                    )
        return self
