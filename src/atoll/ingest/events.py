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


#: Bytes kept free under the bus's limit for what the transport adds (JetStream headers).
_SLACK = 1024


def encode_telemetry_chunks(
    project: str,
    device: str,
    metrics: list[str],
    key_index: list[int],
    ts: list[int],
    value: list[float],
    max_bytes: int | None,
) -> list[bytes]:
    """``encode_telemetry``, split in point order into events that each fit in ``max_bytes``
    (the bus's ``max_payload``; ``None``: one event). A consumer sees every point, in order.

    >>> chunks = encode_telemetry_chunks("p", "d", ["t"], [0] * 500, list(range(500)),
    ...                                  [1.5] * 500, max_bytes=_SLACK + 2000)
    >>> len(chunks) > 1, max(map(len, chunks)) <= 2000
    (True, True)
    >>> sum((decode_telemetry(c).ts.tolist() for c in chunks), []) == list(range(500))
    True
    """
    data = encode_telemetry(project, device, metrics, key_index, ts, value)
    if max_bytes is None or len(data) <= max_bytes - _SLACK or len(ts) <= 1:
        return [data]  # a single point over the limit: the bus refuses it, and says so
    parts = -(-len(data) // max(max_bytes - _SLACK, 1)) + 1  # an estimate; checked again below
    step = -(-len(ts) // parts)
    out: list[bytes] = []
    for i in range(0, len(ts), step):
        j = i + step
        out += encode_telemetry_chunks(
            project, device, metrics, key_index[i:j], ts[i:j], value[i:j], max_bytes
        )
    return out


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
