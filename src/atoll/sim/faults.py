"""Injected faults and their ground truth.

A fault is ``(device, kind, metrics, start, end)``; times are epoch seconds (float). The ground
truth file is JSON with ISO-8601 times so that a person can read it, and the scoring in
:mod:`atoll.sim.evaluate` reads it back.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from atoll.core.errors import InvalidInput
from atoll.core.time import S, from_us, parse_timestamp_any_unit


@dataclass(frozen=True, slots=True)
class Fault:
    device: str
    kind: str
    metrics: tuple[str, ...]
    start: float
    end: float

    def active(self, t: float) -> bool:
        return self.start <= t < self.end

    def to_dict(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "kind": self.kind,
            "metrics": list(self.metrics),
            "start": iso(self.start),
            "end": iso(self.end),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Fault:
        try:
            start, end = to_seconds(d["start"]), to_seconds(d["end"])
            return cls(str(d["device"]), str(d["kind"]), tuple(d.get("metrics") or ()), start, end)
        except (KeyError, TypeError, ValueError) as e:
            raise InvalidInput(
                f"bad fault record {d!r}: {e}", hint="need device, kind, metrics, start, end"
            ) from e


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def to_seconds(value: object) -> float:
    """Epoch seconds (the simulator's unit) from an ISO-8601 string, a datetime, or epoch s, ms
    or µs told by magnitude: ground truth and detections may come in any of them.

    >>> to_seconds("2023-11-14T22:13:20Z"), to_seconds(1_700_000_000_000), to_seconds(1.7e15)
    (1700000000.0, 1700000000.0, 1700000000.0)
    """
    return from_us(parse_timestamp_any_unit(value), S)


def write_ground_truth(path: str | Path, faults: Iterable[Fault], **meta: Any) -> None:
    doc = {**meta, "faults": [f.to_dict() for f in faults]}
    Path(path).write_text(json.dumps(doc, indent=2, ensure_ascii=False), encoding="utf-8")


def read_ground_truth(source: str | Path | dict | list) -> list[Fault]:
    """Faults from a ground-truth file path, its parsed JSON, or a list of fault records."""
    doc = (
        json.loads(Path(source).read_text(encoding="utf-8"))
        if isinstance(source, (str, Path))
        else source
    )
    records = doc["faults"] if isinstance(doc, dict) else doc
    return [r if isinstance(r, Fault) else Fault.from_dict(r) for r in records]
