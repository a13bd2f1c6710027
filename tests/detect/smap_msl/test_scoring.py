"""telemanom's event scoring on hand-made cases: no corpus needed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from atoll.core.errors import InvalidInput
from atoll.detect.smap_msl import (
    Channel,
    Corpus,
    EventCounts,
    covered_points,
    match_events,
    score_corpus,
    score_flags,
    sequences_from_flags,
)


def _flags(n, *points):
    f = np.zeros(n, dtype=bool)
    f[list(points)] = True
    return f


def _channel(chan_id, spacecraft, n, *label_sets):
    return Channel(
        chan_id,
        spacecraft,
        np.zeros(10),
        np.zeros(n),
        tuple(np.array(s, dtype=np.int64).reshape(-1, 2) for s in label_sets),
    )


def test_runs_of_flags_become_sequences():
    assert sequences_from_flags(_flags(20, 3, 4, 5, 9, 15)).tolist() == [[3, 5], [9, 9], [15, 15]]
    # Adjacent points are one run; a single gap splits them.
    assert sequences_from_flags(_flags(10, 4, 5)).tolist() == [[4, 5]]
    assert sequences_from_flags(_flags(10, 4, 6)).tolist() == [[4, 4], [6, 6]]
    assert sequences_from_flags(_flags(10, 0, 9)).tolist() == [[0, 0], [9, 9]]


def test_no_flags_no_sequences():
    for buffer in (0, 100):
        seqs = sequences_from_flags(np.zeros(50, dtype=bool), buffer)
        assert seqs.shape == (0, 2)
    assert sequences_from_flags(np.zeros(0, dtype=bool), 5).shape == (0, 2)


def test_buffer_widens_clips_and_merges():
    # ±3 around 10 and 20: [7, 13] and [17, 23] stay apart (14..16 uncovered).
    assert sequences_from_flags(_flags(40, 10, 20), 3).tolist() == [[7, 13], [17, 23]]
    # ±4: [6, 14] and [16, 24] leave only 15 uncovered: still two.
    assert sequences_from_flags(_flags(40, 10, 20), 4).tolist() == [[6, 14], [16, 24]]
    # ±5: [5, 15] and [15, 25] overlap: one sequence.
    assert sequences_from_flags(_flags(40, 10, 20), 5).tolist() == [[5, 25]]
    # [6, 14] and [15, 23] touch (adjacent indices): one sequence.
    assert sequences_from_flags(_flags(40, 10, 19), 4).tolist() == [[6, 23]]
    # Clipped to the array at both ends.
    assert sequences_from_flags(_flags(30, 1, 28), 5).tolist() == [[0, 6], [23, 29]]
    # A chain of flags each within reach of the next becomes one sequence.
    assert sequences_from_flags(_flags(100, 10, 18, 26, 34), 4).tolist() == [[6, 38]]
    with pytest.raises(InvalidInput):
        sequences_from_flags(_flags(10, 1), -1)


def test_overlap_is_inclusive_at_both_ends():
    labelled = [[10, 20]]
    assert match_events(labelled, [[20, 30]]) == EventCounts(tp=1, fp=0, fn=0)
    assert match_events(labelled, [[0, 10]]) == EventCounts(tp=1, fp=0, fn=0)
    assert match_events(labelled, [[12, 14]]) == EventCounts(tp=1, fp=0, fn=0)  # inside
    assert match_events(labelled, [[0, 40]]) == EventCounts(tp=1, fp=0, fn=0)  # around
    # Adjacent is not overlapping.
    assert match_events(labelled, [[21, 30]]) == EventCounts(tp=0, fp=1, fn=1)
    assert match_events(labelled, [[0, 9]]) == EventCounts(tp=0, fp=1, fn=1)


def test_counting_rules():
    # One prediction over two labelled sequences finds both; it is no false positive.
    assert match_events([[10, 20], [30, 40]], [[15, 35]]) == EventCounts(tp=2, fp=0, fn=0)
    # Two predictions in one labelled sequence: one TP, no FP.
    assert match_events([[10, 40]], [[12, 13], [30, 31]]) == EventCounts(tp=1, fp=0, fn=0)
    # Each prediction that touches nothing is one false positive, whatever its length.
    assert match_events([[10, 20]], [[0, 2], [50, 500], [15, 15]]) == EventCounts(1, 2, 0)
    # Nothing predicted: every labelled sequence is missed.
    assert match_events([[10, 20], [30, 40]], []) == EventCounts(tp=0, fp=0, fn=2)
    assert match_events(np.empty((0, 2)), [[1, 2]]) == EventCounts(tp=0, fp=1, fn=0)
    with pytest.raises(InvalidInput):
        match_events([[20, 10]], [])


def test_precision_recall_f1():
    c = EventCounts(tp=87, fp=13, fn=18)
    assert c.precision == pytest.approx(0.870)
    assert c.recall == pytest.approx(87 / 105)
    assert c.f1 == pytest.approx(2 * 87 / (2 * 87 + 13 + 18))
    assert EventCounts(tp=1, fp=2, fn=3) + EventCounts(tp=4, fp=5, fn=6) == EventCounts(5, 7, 9)
    empty = EventCounts(tp=0, fp=0, fn=3)
    assert (empty.precision, empty.recall, empty.f1) == (0.0, 0.0, 0.0)


def test_covered_points_counts_each_index_once():
    assert covered_points([[0, 9], [5, 14]], 100) == 15
    assert covered_points([[95, 120]], 100) == 5  # clipped to the test array
    assert covered_points([], 100) == 0
    assert covered_points(sequences_from_flags(_flags(1000, 500), 100), 1000) == 201


@pytest.fixture
def tiny():
    return Corpus(
        Path("."),
        {
            "A-1": _channel("A-1", "SMAP", 1000, [[100, 150]]),
            "P-2": _channel("P-2", "SMAP", 1000, [[500, 600]], [[480, 620]]),  # two label rows
            "M-1": _channel("M-1", "MSL", 500, [[50, 60], [300, 310]]),
        },
    )


def test_corpus_sums_over_channels_and_label_rows(tiny):
    report = score_corpus(
        tiny, {"A-1": [[140, 160], [800, 810]], "P-2": [[470, 490]], "M-1": np.empty((0, 2))}
    )
    # P-2's prediction misses its first row's labels and hits its second's: scored per row.
    assert report.channels["P-2"].counts == EventCounts(tp=1, fp=1, fn=1)
    assert report.channels["P-2"].covered == 21  # coverage counts once per channel
    assert report.spacecraft["SMAP"].counts == EventCounts(tp=2, fp=2, fn=1)
    assert report.spacecraft["MSL"].counts == EventCounts(tp=0, fp=0, fn=2)
    assert report.overall.counts == EventCounts(tp=2, fp=2, fn=3)
    assert report.overall.covered == 21 + 11 + 21 and report.overall.points == 2500
    assert report.to_dict()["overall"]["coverage"] == pytest.approx(53 / 2500)
    with pytest.raises(InvalidInput, match="M-1"):
        score_corpus(tiny, {"A-1": [], "P-2": []})


def test_flags_scored_with_and_without_buffer(tiny):
    flags = {
        "A-1": _flags(1000, 90),  # 10 points before the anomaly: found only with the buffer
        "P-2": np.zeros(1000, dtype=bool),
        "M-1": _flags(500, 55, 56, 200),
    }
    plain, runs = score_flags(tiny, flags, buffer=0)
    assert runs["M-1"].tolist() == [[55, 56], [200, 200]]
    assert plain.overall.counts == EventCounts(tp=1, fp=2, fn=4)
    wide, seqs = score_flags(tiny, flags, buffer=100)
    assert seqs["A-1"].tolist() == [[0, 190]]
    assert seqs["M-1"].tolist() == [[0, 300]]  # 55..56 and 200 merge; reaches 300..310
    assert wide.overall.counts == EventCounts(tp=3, fp=0, fn=2)
    assert wide.overall.covered == 191 + 301
    with pytest.raises(InvalidInput, match="A-1"):
        score_flags(tiny, {**flags, "A-1": np.zeros(5, dtype=bool)})
