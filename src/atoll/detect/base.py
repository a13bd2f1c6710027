"""Shared plumbing for Atoll's detectors: state round-trips and strictly-online replay.

A detector keeps everything it learned in a few fixed-size numpy arrays (so memory per series is
bounded and known) plus constructor parameters. Subclasses list those arrays in ``_state_arrays``
and may override ``score_many`` with a compiled loop.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from atoll.core.errors import InvalidInput
from atoll.detect.port import Catalog
from atoll.detect.state import Snapshot, pack, unpack


class StreamingDetector:
    #: Registry name; also the ``kind`` in saved state.
    kind: ClassVar[str] = ""
    #: Bumped when the meaning of the saved arrays changes.
    version: ClassVar[int] = 1
    #: Names of the attributes that hold learned state (fixed-size numpy arrays).
    _state_arrays: ClassVar[tuple[str, ...]] = ()
    #: Score at or above which the detector calls a reading anomalous.
    default_threshold: ClassVar[float] = 0.99
    #: True for detectors that take a 1-D array per reading.
    multivariate: ClassVar[bool] = False

    def params(self) -> dict[str, Any]:
        """Constructor arguments that recreate this detector (untrained)."""
        raise NotImplementedError

    def learn_one(self, x, ts: int | None = None) -> None:
        raise NotImplementedError

    def score_one(self, x, ts: int | None = None) -> float:
        raise NotImplementedError

    def fit(self, values: np.ndarray, timestamps: np.ndarray | None = None) -> None:
        """These readings are known normal: a streaming detector learns each in turn."""
        values = np.asarray(values, dtype=np.float64)
        for i in range(len(values)):
            self.learn_one(values[i], None if timestamps is None else int(timestamps[i]))

    def score_many(self, values: np.ndarray, timestamps: np.ndarray | None = None) -> np.ndarray:
        """Score then learn each reading in order: the batch twin of ``score_one``/``learn_one``."""
        values = np.asarray(values, dtype=np.float64)
        out = np.empty(len(values))
        for i in range(len(values)):
            ts = None if timestamps is None else int(timestamps[i])
            out[i] = self.score_one(values[i], ts)
            self.learn_one(values[i], ts)
        return out

    # -- state -------------------------------------------------------------------------------
    def _snapshot(self) -> Snapshot:
        return Snapshot(
            self.kind,
            self.version,
            self.params(),
            {name: getattr(self, name) for name in self._state_arrays},
        )

    def state(self) -> bytes:
        return pack(self._snapshot())

    @classmethod
    def _from_snapshot(cls, snap: Snapshot, catalog: Catalog | None = None) -> StreamingDetector:
        """Rebuild from ``snap``; wrappers restore their children through ``catalog``."""
        if snap.kind != cls.kind or snap.version != cls.version:
            raise InvalidInput(
                f"state is for {snap.kind} v{snap.version}, not {cls.kind} v{cls.version}",
                hint="restore with atoll.detect.restore(blob), which picks the right detector",
            )
        det = cls(**snap.params)
        for name in cls._state_arrays:
            mine = getattr(det, name)
            saved = snap.arrays[name]
            if saved.shape != mine.shape or saved.dtype != mine.dtype:
                raise InvalidInput(
                    f"state array {name} has shape {saved.shape}, expected {mine.shape}"
                )
            setattr(det, name, saved)
        return det

    @classmethod
    def from_state(cls, blob: bytes, catalog: Catalog | None = None) -> StreamingDetector:
        return cls._from_snapshot(unpack(blob), catalog)

    def nbytes(self) -> int:
        """Memory held by learned state (the bound on memory per series)."""
        return int(sum(getattr(self, name).nbytes for name in self._state_arrays))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"


def as_scalar(x) -> float:
    """Readings arrive as floats, numpy scalars or 1-element arrays."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.size != 1:
        raise InvalidInput(
            f"this detector takes one value per reading, got {arr.size}",
            hint="use a multivariate detector (e.g. 'joint') for several sensors",
        )
    return float(arr.reshape(()))
