"""Replaying recorded streams through detectors,
strictly online and one fresh detector per stream."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from atoll.detect import warmup
from atoll.detect.registry import get_detector


@dataclass(frozen=True)
class ReplayResult:
    scores: dict[str, np.ndarray]
    points: int
    seconds: float  # detector time only (no file I/O), wall clock
    cpu_seconds: float  # the same span in this process's CPU time (what a busy machine can't steal)

    @property
    def points_per_second(self) -> float:
        return self.points / self.seconds if self.seconds > 0 else float("inf")

    @property
    def points_per_cpu_second(self) -> float:
        return self.points / self.cpu_seconds if self.cpu_seconds > 0 else float("inf")


def replay(
    name: str,
    streams: Mapping[str, tuple[np.ndarray, np.ndarray | None]],
    params: Mapping[str, Any] | None = None,
    on_stream: Callable[[str, np.ndarray], None] | None = None,
) -> ReplayResult:
    """Score every ``relpath -> (values, timestamps)`` stream with a fresh ``name`` detector.

    Each detector sees one reading at a time in order (``score_many`` scores a reading before
    learning it), so no score depends on later readings or on any other stream.
    """
    params = dict(params or {})
    out: dict[str, np.ndarray] = {}
    seconds, cpu, points = 0.0, 0.0, 0
    for relpath, (values, timestamps) in streams.items():
        det = get_detector(name, **params)
        t0, c0 = time.perf_counter(), time.process_time()
        scores = np.asarray(det.score_many(values, timestamps), dtype=np.float64)
        seconds += time.perf_counter() - t0
        cpu += time.process_time() - c0
        points += len(values)
        out[relpath] = scores
        if on_stream is not None:
            on_stream(relpath, scores)
    return ReplayResult(out, points, seconds, cpu)


def warm_up(names: Iterable[str]) -> None:
    """Compile detectors' kernels before timing them (numba compiles on first call)."""
    detectors = (get_detector(name) for name in names)
    warmup.warm_up((det, 2 if det.multivariate else 0) for det in detectors)
