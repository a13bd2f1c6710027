"""Payloads ingest publishes on the bus, with their decoders for consumers.

``telemetry.{project}.{device}`` carries the points of one device that were just stored::

    {"project": "p", "device": "d", "metrics": ["t", "h"],
     "key_index": [0, 1, 0], "ts": [µs, ...], "value": [21.5, 40.0, 21.6]}

Decode with ``decode_telemetry(msg.data) -> PointBatch``. Twin and command-ack subjects carry
``{"project", "device", ...}`` JSON objects (see ``encode_twin``/``encode_command_ack``).
"""

from __future__ import annotations

from typing import Any

import msgspec
import numpy as np

from atoll.core.points import PointBatch, SeriesKey


class TelemetryEvent(msgspec.Struct):
    project: str
    device: str
    metrics: list[str]
    key_index: list[int]
    ts: list[int]
    value: list[float]


_enc = msgspec.json.Encoder()
_dec = msgspec.json.Decoder(TelemetryEvent)


def encode_telemetry(
    project: str,
    device: str,
    metrics: list[str],
    key_index: list[int],
    ts: list[int],
    value: list[float],
) -> bytes:
    return _enc.encode(TelemetryEvent(project, device, metrics, key_index, ts, value))


def decode_telemetry(data: bytes) -> PointBatch:
    """The points of a ``telemetry.*.*`` bus message.

    >>> b = decode_telemetry(encode_telemetry("p", "d", ["t"], [0], [5], [1.5]))
    >>> b.keys, b.ts.tolist(), b.value.tolist()
    ((SeriesKey(project='p', device='d', metric='t'),), [5], [1.5])
    """
    e = _dec.decode(data)
    return PointBatch(
        tuple(SeriesKey(e.project, e.device, m) for m in e.metrics),
        np.array(e.key_index, dtype=np.int32),
        np.array(e.ts, dtype=np.int64),
        np.array(e.value, dtype=np.float64),
    )


def encode_twin(project: str, device: str, reported: dict[str, Any], at: int) -> bytes:
    return _enc.encode({"project": project, "device": device, "reported": reported, "at": at})


def encode_command_ack(
    project: str, device: str, command_id: str, status: str, result: Any, at: int
) -> bytes:
    return _enc.encode(
        {
            "project": project,
            "device": device,
            "command": command_id,
            "status": status,
            "result": result,
            "at": at,
        }
    )
