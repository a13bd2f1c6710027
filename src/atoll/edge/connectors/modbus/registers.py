"""Modbus registers ↔ values: data types, byte order (within a register) and word order
(between registers), scale and offset.

A register is 16 bits. Byte order ``big`` means the high byte first in each register (the
Modbus norm); word order ``big`` means the most significant register first at the lowest
address. So ``float32`` 12.5 (``0x41480000``) is ``[0x4148, 0x0000]`` in big/big, and
``[0x0000, 0x4841]`` in little/little:

>>> decode([0x4148, 0x0000], "float32", "big", "big")
12.5
>>> encode(12.5, "float32", "little", "little") == [0x0000, 0x4841]
True
>>> decode([0xFFFF], "int16", "big", "big"), decode([0xFFFF], "uint16", "big", "big")
(-1, 65535)
>>> to_raw(230.4, "uint16", scale=0.1, offset=0.0)
2304
>>> to_raw(70000, "uint16", scale=1.0, offset=0.0)
Traceback (most recent call last):
...
ValueError: 70000 is out of range for uint16 (0 to 65535)
>>> to_raw(4000, "int16", scale=0.1, offset=0.0)
Traceback (most recent call last):
...
ValueError: 4000 (raw 40000) is out of range for int16 (-32768 to 32767)
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from typing import Literal

DataType = Literal["int16", "uint16", "int32", "uint32", "int64", "float32", "float64", "bool"]
Order = Literal["big", "little"]

#: registers per value
WIDTH: dict[str, int] = {
    "int16": 1,
    "uint16": 1,
    "int32": 2,
    "uint32": 2,
    "int64": 4,
    "float32": 2,
    "float64": 4,
    "bool": 1,
}
_FORMAT = {
    "int16": "h",
    "uint16": "H",
    "int32": "i",
    "uint32": "I",
    "int64": "q",
    "float32": "f",
    "float64": "d",
}
_INT_RANGE = {
    "int16": (-(2**15), 2**15 - 1),
    "uint16": (0, 2**16 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
    "int64": (-(2**63), 2**63 - 1),
}
_FLOAT32_MAX = 3.4028234663852886e38


def decode(registers: Sequence[int], dtype: DataType, byte_order: Order, word_order: Order):
    """The raw value in ``registers`` (exactly ``WIDTH[dtype]`` of them)."""
    if dtype == "bool":
        return registers[0] != 0
    words = list(registers) if word_order == "big" else list(reversed(registers))
    raw = b"".join(w.to_bytes(2, byte_order) for w in words)
    return struct.unpack(">" + _FORMAT[dtype], raw)[0]


def encode(raw: int | float | bool, dtype: DataType, byte_order: Order, word_order: Order):
    """The registers that hold ``raw`` (the inverse of :func:`decode`)."""
    if dtype == "bool":
        return [1 if raw else 0]
    packed = struct.pack(">" + _FORMAT[dtype], raw)
    words = [int.from_bytes(packed[i : i + 2], byte_order) for i in range(0, len(packed), 2)]
    return words if word_order == "big" else list(reversed(words))


def to_raw(value: float, dtype: DataType, *, scale: float, offset: float) -> int | float:
    """The raw value that reads back as ``value`` (``raw * scale + offset``), range-checked
    against ``dtype``; ``ValueError`` says why it cannot be written."""
    if not math.isfinite(value):
        raise ValueError(f"{value} is not a finite number")
    raw = (value - offset) / scale
    if dtype in _INT_RANGE:
        lo, hi = _INT_RANGE[dtype]
        whole = round(raw)
        if not lo <= whole <= hi:
            raw_text = "" if whole == value else f" (raw {whole})"
            raise ValueError(f"{value}{raw_text} is out of range for {dtype} ({lo} to {hi})")
        return whole
    if dtype == "float32" and abs(raw) > _FLOAT32_MAX:
        raise ValueError(f"{value} is out of range for float32")
    return raw


def engineering(raw: int | float | bool, *, scale: float, offset: float) -> float | bool:
    """Atoll's value for a raw one: booleans stay booleans, numbers become scaled floats."""
    if isinstance(raw, bool):
        return raw
    return float(raw) * scale + offset
