"""Conformance: re-scoring the authors' published telemanom run gives their numbers."""

from __future__ import annotations

import numpy as np
import pytest

from atoll.core.errors import InvalidInput
from atoll.detect.smap_msl import (
    EventCounts,
    find_published_run,
    load_published_run,
    score_corpus,
)


@pytest.fixture(scope="module")
def published(smap_msl_corpus):
    return load_published_run(find_published_run(smap_msl_corpus.root))


def test_reproduces_the_published_run(smap_msl_corpus, published):
    report = score_corpus(smap_msl_corpus, published)
    overall = report.overall.counts
    assert overall == EventCounts(tp=87, fp=13, fn=18)
    assert round(overall.precision, 3) == 0.870
    assert round(overall.recall, 3) == 0.829
    assert round(overall.f1, 3) == 0.849
    assert round(report.spacecraft["SMAP"].counts.f1, 3) == 0.867
    assert round(report.spacecraft["MSL"].counts.f1, 3) == 0.806
    # The README's "covers 5.2 %" of the test points.
    assert round(report.overall.coverage, 3) == 0.052


def test_per_channel_counts_match_the_file(smap_msl_corpus, published):
    """Every row of the run file agrees with our counts for its channel (P-2's two rows sum)."""
    import csv

    with open(find_published_run(smap_msl_corpus.root), newline="") as f:
        rows = list(csv.DictReader(f))
    expected: dict[str, EventCounts] = {}
    for row in rows:
        counts = EventCounts(
            int(row["true_positives"]), int(row["false_positives"]), int(row["false_negatives"])
        )
        expected[row["chan_id"]] = expected.get(row["chan_id"], EventCounts()) + counts
    report = score_corpus(smap_msl_corpus, published)
    assert {c: t.counts for c, t in report.channels.items()} == expected


def test_a_run_file_must_be_one(tmp_path):
    path = tmp_path / "run.csv"
    path.write_text('chan_id,fp_sequences,tp_sequences\nP-2,[],"[(1, 5)]"\nP-2,[],"[(1, 6)]"\n')
    with pytest.raises(InvalidInput, match="P-2"):
        load_published_run(path)
    path.write_text("chan,x\nA-1,[]\n")
    with pytest.raises(InvalidInput, match="columns"):
        load_published_run(path)


def test_flagging_everything_finds_everything_at_full_coverage(smap_msl_corpus):
    """Why coverage is reported: the event rules charge nothing for a prediction's length."""
    from atoll.detect.smap_msl import evaluate

    result = evaluate(smap_msl_corpus, lambda chan: np.ones(len(chan.test), dtype=bool))
    overall = result["with_buffer"]["overall"]
    assert (overall["tp"], overall["fp"], overall["fn"]) == (105, 0, 0)
    assert overall["f1"] == 1.0 and overall["coverage"] == 1.0
