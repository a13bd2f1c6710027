"""``atoll bench smap-msl``: a detector over every channel, as a user would run ``atoll detect``.

Per channel, the train file followed by the test file goes through the code path of
``atoll detect --warmup-rows <len(train)>`` (:func:`atoll.detect.history.detect_table`): the train
rows are known-normal history the detector is fitted on, and the test rows are judged online.
Two outputs of that run are scored:

* ``alarm``: the rising edges of ``is_anomaly``, one per episode: the events telemanom's metric
  counts, scored against its coverage (telemanom's run covers 5.2 % of the test points);
* ``is_anomaly``: the decision on every row (for ``fitted`` a condition flag that stays up for the
  whole episode). Its coverage is reported, not capped: the labels alone cover 12.5 % of the test
  points (16.2 % once widened by the buffer), so a flag that is up while the anomaly lasts cannot
  stay under 5.2 %.

The data has no clock (telemanom anonymised time): the bench writes one reading a minute, and the
test file starts a day after the train file ends, because they are two recordings, not one. A
detector that reads timestamps sees that gap as it would see one in a device's telemetry
(``fitted`` starts a new segment: no window or lag spans the junction).

For other candidates (and held-out checks: tune on one spacecraft, check on the other),
:func:`evaluate` scores any ``Channel -> flags on its test array`` function::

    from atoll.detect.smap_msl import evaluate, load_corpus

    corpus = load_corpus()
    smap = evaluate(corpus.subset(spacecraft="SMAP"), my_flags)   # tune here
    msl = evaluate(corpus.subset(spacecraft="MSL"), my_flags)     # check here, untouched
    msl["with_buffer"]["overall"]["f1"], msl["with_buffer"]["overall"]["coverage"]
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from atoll.core.errors import InvalidInput, NotFound
from atoll.detect.history import Table, detect_table
from atoll.detect.registry import resolve
from atoll.detect.replay import warm_up
from atoll.detect.smap_msl.corpus import Channel, Corpus
from atoll.detect.smap_msl.published import LABEL, find_published_run, load_published_run
from atoll.detect.smap_msl.scoring import BUFFER, score_corpus, score_flags

#: The data has no clock (telemanom anonymised time): one reading a minute, as a user might write.
START = np.datetime64("2018-01-01T00:00:00", "us")
STEP = np.timedelta64(60, "s")
#: The test file is another recording than the train file: it starts this long after it ends.
GAP = np.timedelta64(1, "D")
#: The outputs of a run that are scored: the alarms first (the events the metric counts).
OUTPUTS = ("alarm", "is_anomaly")

Flagger = Callable[[Channel], np.ndarray]


def as_table(channel: Channel) -> Table:
    """The channel's train then test values as ``atoll detect`` reads them from a CSV file: one
    reading a minute, the test rows a day after the last train row."""
    values = np.concatenate([channel.train, channel.test])
    stamps = START + np.arange(len(values)) * STEP
    stamps[len(channel.train) :] += GAP
    return Table(
        timestamps=list(np.datetime_as_string(stamps, unit="s")),
        ts_us=stamps.astype(np.int64),
        columns=["value"],
        values=values[:, None],
        delimiter=",",
        ignored=[],
    )


def detect_outputs(channel: Channel, detector: str = "default") -> dict[str, np.ndarray]:
    """``alarm`` and ``is_anomaly`` on the test rows of ``atoll detect --warmup-rows
    <len(train)>``."""
    result = detect_table(as_table(channel), detector, warmup_rows=len(channel.train))
    start = len(channel.train)
    return {
        "alarm": np.asarray(result.alarms[start:], dtype=bool),
        "is_anomaly": np.asarray(result.flags[start:], dtype=bool),
    }


def detect_flags(channel: Channel, detector: str = "default") -> np.ndarray:
    """``is_anomaly`` on the test rows of ``atoll detect --warmup-rows <len(train)>``."""
    return detect_outputs(channel, detector)["is_anomaly"]


def score_outputs(
    corpus: Corpus, flags: Mapping[str, np.ndarray], buffer: int = BUFFER
) -> dict[str, Any]:
    """Per-channel flags on the test arrays, scored with and without the buffer: the
    ``with_buffer`` and ``without_buffer`` reports, how many points were flagged, and the
    predicted runs without the buffer (``sequences``: enough to re-score)."""
    if buffer < 0:
        raise InvalidInput(f"the buffer must be >= 0, got {buffer}")
    buffered, _ = score_flags(corpus, flags, buffer)
    plain, runs = score_flags(corpus, flags, 0)
    return {
        "buffer": buffer,
        "with_buffer": buffered.to_dict(),
        "without_buffer": plain.to_dict(),
        "flagged_points": int(sum(int(f.sum()) for f in flags.values())),
        "sequences": {k: v.tolist() for k, v in runs.items()},
    }


def _timed(
    corpus: Corpus,
    run: Callable[[Channel], dict[str, np.ndarray]],
    on_channel: Callable[[str], None] | None,
) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, Any]]:
    """``run`` on every channel: its outputs by name then channel, and the time it took."""
    outputs: dict[str, dict[str, np.ndarray]] = {}
    seconds = cpu = 0.0
    for chan_id, chan in corpus.channels.items():
        t0, c0 = time.perf_counter(), time.process_time()
        for name, flags in run(chan).items():
            outputs.setdefault(name, {})[chan_id] = np.asarray(flags, dtype=bool)
        seconds += time.perf_counter() - t0
        cpu += time.process_time() - c0
        if on_channel is not None:
            on_channel(chan_id)
    points = sum(len(c.train) + len(c.test) for c in corpus.channels.values())
    return outputs, {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "points": points,
        "points_per_s": points / seconds if seconds > 0 else None,
        "points_per_cpu_s": points / cpu if cpu > 0 else None,
    }


def evaluate(
    corpus: Corpus,
    flagger: Flagger,
    buffer: int = BUFFER,
    on_channel: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Flag every channel's test array with ``flagger`` and score it with and without the buffer.

    Returns ``with_buffer`` and ``without_buffer`` reports (``overall``, ``spacecraft``,
    ``channels``; each with tp/fp/fn, precision/recall/f1, coverage), the predicted runs without
    the buffer (``sequences``: enough to re-score), and the time ``flagger`` took.
    """
    if buffer < 0:
        raise InvalidInput(f"the buffer must be >= 0, got {buffer}")
    outputs, timing = _timed(corpus, lambda chan: {"flags": flagger(chan)}, on_channel)
    return {**score_outputs(corpus, outputs.get("flags", {}), buffer), **timing}


def published_scores(corpus: Corpus) -> dict[str, Any]:
    """The authors' published run (beside the corpus) re-scored on ``corpus``."""
    path = find_published_run(corpus.root)
    report = score_corpus(corpus, load_published_run(path))
    return {"detector": LABEL, "file": str(path), **report.to_dict()}


def run_smap_msl(
    corpus: Corpus,
    detector: str = "default",
    buffer: int = BUFFER,
    on_channel: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run ``detector`` over every channel of ``corpus`` the way ``atoll detect`` does; score its
    alarms and its ``is_anomaly`` (``OUTPUTS``)."""
    if buffer < 0:
        raise InvalidInput(f"the buffer must be >= 0, got {buffer}")
    shortest = min((len(c.train) for c in corpus.channels.values()), default=0)
    kinds = sorted({resolve(detector, len(c.train)) for c in corpus.channels.values()})
    label = "+".join(kinds) if detector != "default" else f"default-{'+'.join(kinds)}"
    warm_up(kinds)  # compile before timing
    outputs, timing = _timed(corpus, lambda chan: detect_outputs(chan, detector), on_channel)
    crafts = sorted({c.spacecraft for c in corpus.channels.values()})
    return {
        "benchmark": "smap-msl",
        "detector": label,
        "method": "atoll detect --warmup-rows <train length> on train, then test (a day later); "
        "alarm (rising edges of is_anomaly) and is_anomaly on the test rows",
        "scored": list(OUTPUTS),
        **{name: score_outputs(corpus, outputs.get(name, {}), buffer) for name in OUTPUTS},
        "buffer": buffer,
        "shortest_train": shortest,
        **timing,
        "published": _published_or_none(corpus),
        "corpus": {
            "dir": str(corpus.root),
            "channels": len(corpus),
            "spacecraft": crafts,
            "label_rows": sum(len(c.label_sets) for c in corpus.channels.values()),
            "labelled_sequences": corpus.labelled_sequences,
            "train_points": sum(len(c.train) for c in corpus.channels.values()),
            "test_points": corpus.test_points,
        },
        "machine": {
            "python": platform.python_version(),
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
        },
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def _published_or_none(corpus: Corpus) -> dict[str, Any] | None:
    try:
        return published_scores(corpus)
    except NotFound:
        return None
