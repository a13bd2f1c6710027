"""Raw score files in NAB's results layout: ``<detector>/<category>/<detector>_<name>.csv``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from atoll.core.errors import NotFound
from atoll.detect.nab.corpus import Corpus, Stream, read_series_csv
from atoll.detect.nab.scoring import profile_scores, score_at_threshold


def result_path(results_dir: str | os.PathLike, detector: str, stream: Stream) -> Path:
    return Path(results_dir) / detector / stream.category / f"{detector}_{stream.name}.csv"


def write_scores(
    results_dir: str | os.PathLike, detector: str, stream: Stream, scores: np.ndarray
) -> Path:
    path = result_path(results_dir, detector, stream)
    path.parent.mkdir(parents=True, exist_ok=True)
    stamps = np.datetime_as_string(stream.timestamps, unit="s")
    with open(path, "w") as f:
        f.write("timestamp,anomaly_score\n")
        f.writelines(
            f"{t.replace('T', ' ')},{float(v)!r}\n" for t, v in zip(stamps, scores, strict=True)
        )
    return path


def read_scores(
    results_dir: str | os.PathLike, detector: str, corpus: Corpus
) -> dict[str, np.ndarray]:
    """Load one detector's raw scores for every corpus stream."""
    out = {}
    for relpath, stream in corpus.streams.items():
        path = result_path(results_dir, detector, stream)
        if not path.is_file():
            raise NotFound(
                f"missing raw scores {path}",
                hint=f"the results directory needs {detector}/<category>/{detector}_<name>.csv"
                " per stream",
            )
        _, scores = read_series_csv(path, "anomaly_score")
        out[relpath] = scores
    return out


def score_results_dir(
    results_dir: str | os.PathLike,
    detector: str,
    corpus: Corpus,
    thresholds: Mapping[str, float] | None = None,
) -> dict[str, dict[str, float]]:
    """Score a results directory: optimised thresholds, or the given ones per profile."""
    scores = read_scores(results_dir, detector, corpus)
    if thresholds is None:
        return profile_scores(corpus, scores)
    return {
        name: {"threshold": t, "score": score_at_threshold(corpus, scores, name, t)}
        for name, t in thresholds.items()
    }
