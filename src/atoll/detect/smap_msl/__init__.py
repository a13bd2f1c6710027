"""Atoll's own SMAP/MSL benchmark: NASA spacecraft telemetry scored by telemanom's event rules.

Usage (for detector authors)::

    from atoll.detect.smap_msl import evaluate, load_corpus, score_flags

    corpus = load_corpus()        # or load_corpus("/path"); $ATOLL_SMAP_MSL_DIR works too
    for chan_id, chan in corpus.channels.items():
        chan.train, chan.test     # float64 arrays; train is known-normal history
        chan.label_sets           # never look at these from a detector
    report, sequences = score_flags(corpus, {chan_id: flags_on_test, ...})   # ±100 buffer
    report.overall.counts.f1, report.overall.coverage, report.spacecraft["MSL"].counts
    evaluate(corpus.subset(spacecraft="MSL"), lambda chan: my_flags(chan.train, chan.test))

``score_corpus`` scores predicted sequences directly (``load_published_run`` reads the authors'
run: TP 87, FP 13, FN 18). ``sequences_from_flags`` and ``match_events`` are the per-channel
steps. ``atoll bench smap-msl`` runs a registered detector through ``atoll detect``'s code path
(``detect_outputs``: its alarms and ``is_anomaly`` on the test rows; ``score_outputs`` scores
either).
"""

from atoll.detect.smap_msl.bench import (
    detect_flags,
    detect_outputs,
    evaluate,
    run_smap_msl,
    score_outputs,
)
from atoll.detect.smap_msl.corpus import (
    Channel,
    Corpus,
    find_smap_msl_dir,
    load_corpus,
    parse_sequences,
)
from atoll.detect.smap_msl.published import find_published_run, load_published_run
from atoll.detect.smap_msl.scoring import (
    BUFFER,
    EventCounts,
    Report,
    Tally,
    covered_points,
    match_events,
    score_corpus,
    score_flags,
    sequences_from_flags,
)

__all__ = [
    "BUFFER",
    "Channel",
    "Corpus",
    "EventCounts",
    "Report",
    "Tally",
    "covered_points",
    "detect_flags",
    "detect_outputs",
    "evaluate",
    "find_published_run",
    "find_smap_msl_dir",
    "load_corpus",
    "load_published_run",
    "match_events",
    "parse_sequences",
    "run_smap_msl",
    "score_corpus",
    "score_flags",
    "score_outputs",
    "sequences_from_flags",
]
