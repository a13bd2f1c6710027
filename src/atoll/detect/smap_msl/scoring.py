"""telemanom's event-level scoring (Hundman et al., KDD 2018), written from its description.

Per channel, a labelled sequence is a true positive if any predicted sequence overlaps it, else a
false negative; a predicted sequence that overlaps no labelled sequence is one false positive.
Sequences are inclusive ``[start, end]`` index pairs into the test array. Counts are summed over
channels before precision, recall and F1 are taken. Predicted sequences come from per-point flags:
each flag is widened by ``±buffer`` points (telemanom's ``error_buffer``, 100), then touching or
overlapping runs are merged.

The metric does not charge for the length of a prediction, so every report also carries the share
of test points the predicted sequences cover.

>>> import numpy as np
>>> flags = np.zeros(1000, dtype=bool)
>>> flags[[100, 101, 500]] = True
>>> sequences_from_flags(flags).tolist()
[[100, 101], [500, 500]]
>>> sequences_from_flags(flags, buffer=10).tolist()
[[90, 111], [490, 510]]
>>> match_events(np.array([[95, 120], [700, 800]]), sequences_from_flags(flags, buffer=10))
EventCounts(tp=1, fp=1, fn=1)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from atoll.core.errors import InvalidInput

if TYPE_CHECKING:
    from atoll.detect.smap_msl.corpus import Corpus

#: telemanom's ``error_buffer``: points added on each side of a flagged point.
BUFFER = 100


def sequences_from_flags(flags: np.ndarray, buffer: int = 0) -> np.ndarray:
    """Group flagged points, each widened by ``±buffer`` (clipped to the array), into inclusive
    ``[start, end]`` runs; runs that touch or overlap become one. Returns a ``(k, 2)`` array."""
    if buffer < 0:
        raise InvalidInput(f"the buffer must be >= 0, got {buffer}")
    flags = np.asarray(flags, dtype=bool)
    idx = np.flatnonzero(flags)
    if len(idx) == 0:
        return np.empty((0, 2), dtype=np.int64)
    starts = np.maximum(idx - buffer, 0)
    ends = np.minimum(idx + buffer, len(flags) - 1)
    # idx is sorted and every point is widened alike, so starts and ends are sorted too: a run
    # begins wherever a widened point starts after the previous one's end + 1.
    begins = np.flatnonzero(np.r_[True, starts[1:] > ends[:-1] + 1])
    last = np.r_[begins[1:] - 1, len(idx) - 1]
    return np.column_stack([starts[begins], ends[last]]).astype(np.int64)


@dataclass(frozen=True, slots=True)
class EventCounts:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    def __add__(self, other: EventCounts) -> EventCounts:
        return EventCounts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
        }


def _pairs(sequences: np.ndarray | list) -> np.ndarray:
    out = np.asarray(sequences, dtype=np.int64).reshape(-1, 2)
    if (out[:, 0] > out[:, 1]).any():
        raise InvalidInput("a sequence ends before it starts")
    return out


def match_events(labelled: np.ndarray | list, predicted: np.ndarray | list) -> EventCounts:
    """Event counts for one channel: inclusive ``[start, end]`` labelled and predicted pairs."""
    lab, pred = _pairs(labelled), _pairs(predicted)
    # overlap[i, j]: labelled i and predicted j share at least one index.
    overlap = (lab[:, None, 0] <= pred[None, :, 1]) & (pred[None, :, 0] <= lab[:, None, 1])
    found = int(overlap.any(axis=1).sum())
    return EventCounts(tp=found, fn=len(lab) - found, fp=int((~overlap.any(axis=0)).sum()))


def covered_points(sequences: np.ndarray | list, n: int) -> int:
    """How many of the indices ``0 .. n-1`` lie in at least one sequence."""
    mask = np.zeros(n + 1, dtype=np.int64)
    for start, end in _pairs(sequences):
        lo, hi = max(int(start), 0), min(int(end), n - 1)
        if lo <= hi:
            mask[lo] += 1
            mask[hi + 1] -= 1
    return int((np.cumsum(mask[:n]) > 0).sum())


@dataclass(frozen=True, slots=True)
class Tally:
    """Event counts with the coverage they cost: ``covered`` of ``points`` test points."""

    counts: EventCounts = field(default_factory=EventCounts)
    covered: int = 0
    points: int = 0

    def __add__(self, other: Tally) -> Tally:
        return Tally(
            self.counts + other.counts, self.covered + other.covered, self.points + other.points
        )

    @property
    def coverage(self) -> float:
        return self.covered / self.points if self.points else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.counts.to_dict(),
            "covered_points": self.covered,
            "test_points": self.points,
            "coverage": self.coverage,
        }


@dataclass(frozen=True)
class Report:
    """One set of predictions scored on a corpus: per channel, per spacecraft and overall."""

    channels: dict[str, Tally]
    spacecraft: dict[str, Tally]
    overall: Tally

    def to_dict(self) -> dict[str, Any]:
        return {
            "overall": self.overall.to_dict(),
            "spacecraft": {k: t.to_dict() for k, t in self.spacecraft.items()},
            "channels": {k: t.to_dict() for k, t in self.channels.items()},
        }


def score_corpus(corpus: Corpus, predicted: Mapping[str, np.ndarray | list]) -> Report:
    """Score predicted sequences (``chan_id -> (k, 2)`` test indices) on every corpus channel.

    A channel with several label rows is scored once per row, as telemanom does; its coverage
    counts once.
    """
    missing = [c for c in corpus.channels if c not in predicted]
    if missing:
        raise InvalidInput(
            f"no predictions for {len(missing)} channel(s): {', '.join(missing[:5])}",
            hint="give a (possibly empty) list of sequences for every channel",
        )
    channels: dict[str, Tally] = {}
    crafts: dict[str, Tally] = {}
    for chan_id, chan in corpus.channels.items():
        seqs = _pairs(predicted[chan_id])
        counts = sum((match_events(labels, seqs) for labels in chan.label_sets), EventCounts())
        tally = Tally(counts, covered_points(seqs, len(chan.test)), len(chan.test))
        channels[chan_id] = tally
        crafts[chan.spacecraft] = crafts.get(chan.spacecraft, Tally()) + tally
    overall = sum(crafts.values(), Tally())
    return Report(channels, crafts, overall)


def score_flags(
    corpus: Corpus, flags: Mapping[str, np.ndarray], buffer: int = BUFFER
) -> tuple[Report, dict[str, np.ndarray]]:
    """Score per-point flags on the test arrays (``chan_id -> bool array``) with ``±buffer``.
    Returns the report and the predicted sequences it scored."""
    seqs = {}
    for chan_id, chan in corpus.channels.items():
        f = flags.get(chan_id)
        if f is None:
            continue  # score_corpus names every missing channel
        if len(f) != len(chan.test):
            raise InvalidInput(
                f"{chan_id}: {len(f)} flags for a test array of {len(chan.test)} points"
            )
        seqs[chan_id] = sequences_from_flags(f, buffer)
    return score_corpus(corpus, seqs), seqs
