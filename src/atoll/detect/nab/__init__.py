"""Atoll's own NAB scorer (Numenta Anomaly Benchmark v1.1 rules).

Usage (for detector authors)::

    from atoll.detect.nab import load_corpus, optimise, profile_scores, score_at_threshold

    corpus = load_corpus()                # or load_corpus("/path/to/nab"); $ATOLL_NAB_DIR works too
    scores = {}                           # relpath ("realKnownCause/nyc_taxi.csv") -> np.ndarray
    for relpath, stream in corpus.streams.items():
        # one score per record, online
        scores[relpath] = my_scores(stream.values, stream.timestamps)
    profile_scores(corpus, scores)        # {"standard": {"threshold": t, "score": 70.1}, ...}
    optimise(corpus, scores, "standard")  # (threshold, normalised score), exact sweep, ~0.2 s
    score_at_threshold(corpus, scores, "standard", 0.5)

``Stream`` carries ``values`` (float64), ``timestamps`` (datetime64[us]), ``windows`` (inclusive
record indices) and ``probation``. Never look at ``windows`` from a detector. Raw score files in
NAB's layout: ``write_scores`` / ``read_scores`` / ``score_results_dir`` (see ``results.py``).
"""

from atoll.detect.nab.corpus import (
    Corpus,
    Profile,
    Stream,
    find_nab_dir,
    load_corpus,
    probationary_length,
)
from atoll.detect.nab.results import read_scores, result_path, score_results_dir, write_scores
from atoll.detect.nab.scoring import (
    normalise,
    optimise,
    profile_scores,
    raw_score_at_threshold,
    scaled_sigmoid,
    score_at_threshold,
    sweep,
)

__all__ = [
    "Corpus",
    "Profile",
    "Stream",
    "find_nab_dir",
    "load_corpus",
    "normalise",
    "optimise",
    "probationary_length",
    "profile_scores",
    "raw_score_at_threshold",
    "read_scores",
    "result_path",
    "scaled_sigmoid",
    "score_at_threshold",
    "score_results_dir",
    "sweep",
    "write_scores",
]
