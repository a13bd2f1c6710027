"""Detector state as bytes: a versioned MessagePack envelope around named numpy arrays.

The envelope names the detector kind, so ``atoll.detect.registry.restore`` can rebuild any
detector (including wrappers, whose inner detectors are nested envelopes) from bytes alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np

from atoll.core.errors import InvalidInput

FORMAT = 1


@dataclass
class Snapshot:
    kind: str
    version: int
    params: dict[str, Any]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    children: list[bytes] = field(default_factory=list)


def pack(snap: Snapshot) -> bytes:
    arrays = {
        name: {
            "dtype": a.dtype.str,
            "shape": list(a.shape),
            "data": np.ascontiguousarray(a).tobytes(),
        }
        for name, a in snap.arrays.items()
    }
    return msgspec.msgpack.encode(
        {
            "format": FORMAT,
            "kind": snap.kind,
            "version": snap.version,
            "params": snap.params,
            "arrays": arrays,
            "children": snap.children,
        }
    )


def unpack(blob: bytes) -> Snapshot:
    try:
        raw = msgspec.msgpack.decode(blob)
        if raw.get("format") != FORMAT:
            raise ValueError(f"unknown state format {raw.get('format')!r}")
        arrays = {
            name: np.frombuffer(a["data"], dtype=np.dtype(a["dtype"])).reshape(a["shape"]).copy()
            for name, a in raw["arrays"].items()
        }
        return Snapshot(
            raw["kind"],
            int(raw["version"]),
            dict(raw["params"]),
            arrays,
            list(raw.get("children", [])),
        )
    except (msgspec.DecodeError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InvalidInput(
            f"not a detector state: {exc}", hint="pass bytes produced by a detector's state()"
        ) from exc
