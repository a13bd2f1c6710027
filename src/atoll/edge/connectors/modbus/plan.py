"""Which reads a poll makes: a device's points grouped by poll interval, then by table, into
blocks of contiguous addresses read with one request each.

>>> from atoll.edge.connectors.modbus.config import Device
>>> dev = Device.model_validate({"id": "m", "points": [
...     {"name": "a", "address": 0}, {"name": "b", "address": 1, "type": "float32"},
...     {"name": "c", "address": 10},
...     {"name": "d", "address": 0, "table": "coil", "type": "bool"}]})
>>> [g] = groups(dev, max_registers=125, max_gap=0)
>>> [(b.table, b.start, b.count) for b in g.blocks]
[('coil', 0, 1), ('holding', 0, 3), ('holding', 10, 1)]
>>> [g] = groups(dev, max_registers=125, max_gap=7)  # read across registers 3 to 9
>>> [(b.table, b.start, b.count) for b in g.blocks]
[('coil', 0, 1), ('holding', 0, 11)]
>>> [g] = groups(dev, max_registers=2, max_gap=0)  # the float32 does not fit beside 'a'
>>> [(b.table, b.start, b.count) for b in g.blocks]
[('coil', 0, 1), ('holding', 0, 1), ('holding', 1, 2), ('holding', 10, 1)]
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import groupby

from atoll.edge.connectors.modbus.config import Device, Point
from atoll.edge.connectors.modbus.registers import WIDTH

_MAX_BITS = 2000  # per read of coils or discrete inputs (the protocol's limit)


@dataclass(frozen=True)
class Block:
    table: str
    start: int
    count: int
    points: tuple[Point, ...]


@dataclass(frozen=True)
class Group:
    device: Device
    interval_s: float
    blocks: tuple[Block, ...]


def groups(device: Device, *, max_registers: int, max_gap: int) -> list[Group]:
    """The device's poll groups, one per distinct poll interval."""

    def interval(p: Point) -> float:
        return p.poll_interval_s or device.poll_interval_s

    out = []
    for every, pts in groupby(sorted(device.points, key=interval), key=interval):
        blocks: list[Block] = []
        for table, in_table in groupby(
            sorted(pts, key=lambda p: (p.table, p.address)), key=lambda p: p.table
        ):
            limit = _MAX_BITS if table in ("coil", "discrete") else max_registers
            blocks += _blocks(table, list(in_table), limit, max_gap)
        out.append(Group(device, every, tuple(blocks)))
    return out


def _blocks(table: str, points: list[Point], limit: int, max_gap: int) -> list[Block]:
    out: list[Block] = []
    current: list[Point] = []
    start = end = 0
    for p in points:  # sorted by address
        p_end = p.address + WIDTH[p.type]
        if current and p.address - end <= max_gap and max(end, p_end) - start <= limit:
            current.append(p)
            end = max(end, p_end)
            continue
        if current:
            out.append(Block(table, start, end - start, tuple(current)))
        current, start, end = [p], p.address, p_end
    if current:
        out.append(Block(table, start, end - start, tuple(current)))
    return out
