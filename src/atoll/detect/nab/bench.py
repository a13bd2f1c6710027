"""``atoll bench nab``: run a detector strictly online over the NAB corpus and score it."""

from __future__ import annotations

import datetime as dt
import os
import platform
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from atoll.detect.nab.corpus import Corpus
from atoll.detect.nab.results import write_scores
from atoll.detect.nab.scoring import profile_scores
from atoll.detect.registry import get_detector, resolve
from atoll.detect.replay import replay, warm_up

#: Published scoreboard rows, for context in the printed table.
SCOREBOARD = {
    "ARTime": {"standard": 74.85, "reward_low_FP_rate": 65.15, "reward_low_FN_rate": 80.36},
    "numenta (HTM)": {"standard": 70.10, "reward_low_FP_rate": 63.12, "reward_low_FN_rate": 74.32},
    "windowedGaussian": {
        "standard": 39.65,
        "reward_low_FP_rate": 20.87,
        "reward_low_FN_rate": 47.41,
    },
}


def run_nab(
    corpus: Corpus,
    detector: str = "default",
    params: Mapping[str, Any] | None = None,
    scores_dir: str | os.PathLike | None = None,
    on_stream: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Replay every stream with a fresh detector, write
    raw scores, optimise thresholds per profile."""
    params = dict(params or {})
    kind = resolve(detector)
    label = kind if detector != "default" else f"default-{kind}"
    warm_up([kind])  # compile before timing
    streams = {p: (s.values, s.timestamps) for p, s in corpus.streams.items()}

    def written(relpath, scores):
        if scores_dir is not None:
            write_scores(scores_dir, label, corpus.streams[relpath], scores)
        if on_stream is not None:
            on_stream(relpath)

    result = replay(kind, streams, params, on_stream=written)
    probe = get_detector(kind, **params)
    return {
        "detector": label,
        "params": params,
        "profiles": profile_scores(corpus, result.scores),
        "corpus": {"dir": str(corpus.root), "streams": len(corpus), "points": result.points},
        "throughput_points_per_s": result.points_per_second,
        "throughput_points_per_cpu_s": result.points_per_cpu_second,
        "detector_seconds": result.seconds,
        "detector_cpu_seconds": result.cpu_seconds,
        "memory_bytes_per_series": probe.nbytes(),
        "scores_dir": None if scores_dir is None else str(Path(scores_dir) / label),
        "machine": {
            "python": platform.python_version(),
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
        },
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
