"""The NAB scorer against NAB's published numbers (conformance target in the corpus README)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from atoll.core.errors import InvalidInput
from atoll.detect.nab import (
    optimise,
    probationary_length,
    raw_score_at_threshold,
    read_scores,
    scaled_sigmoid,
    score_at_threshold,
    score_results_dir,
    sweep,
    write_scores,
)

pytestmark = pytest.mark.xdist_group("nab")


@pytest.fixture(scope="module")
def corpus(nab_corpus):
    return nab_corpus


@pytest.fixture(scope="module")
def published(corpus):
    return (
        json.loads((corpus.root / "config" / "thresholds.json").read_text()),
        json.loads((corpus.root / "results" / "final_results.json").read_text()),
    )


def test_corpus_shape(corpus):
    assert len(corpus) == 58
    assert sum(len(s.windows) for s in corpus.streams.values()) == 116
    assert set(corpus.profiles) == {"standard", "reward_low_FP_rate", "reward_low_FN_rate"}
    taxi = corpus.streams["realKnownCause/nyc_taxi.csv"]
    assert taxi.probation == 750 and probationary_length(1000) == 150
    first, last = taxi.windows[0]
    assert str(taxi.timestamps[first]).startswith("2014-10-30T15:30")
    assert first < last


def test_scaled_sigmoid():
    assert scaled_sigmoid(0.0) == pytest.approx(0.0)
    assert scaled_sigmoid(-1.0) == pytest.approx(0.98661429815)
    assert scaled_sigmoid(3.5) == -1.0
    assert scaled_sigmoid(2.0) > -1.0


@pytest.mark.parametrize("detector", ["numenta", "windowedGaussian"])
def test_reproduces_published_scores(corpus, published, detector):
    thresholds, final = published
    got = score_results_dir(
        corpus.root / "reference",
        detector,
        corpus,
        {p: thresholds[detector][p]["threshold"] for p in corpus.profiles},
    )
    for profile in corpus.profiles:
        assert got[profile]["score"] == pytest.approx(final[detector][profile], abs=0.05), profile


def test_reproduces_published_raw_scores(corpus, published):
    # thresholds.json's raw scores for windowedGaussian predate its final results, so only
    # numenta's raw scores are consistent with the scoreboard.
    thresholds, _ = published
    scores = read_scores(corpus.root / "reference", "numenta", corpus)
    for profile in corpus.profiles:
        t = thresholds["numenta"][profile]
        got = raw_score_at_threshold(corpus, scores, corpus.profiles[profile], t["threshold"])
        assert got == pytest.approx(t["score"], abs=1e-6)


@pytest.mark.parametrize("detector", ["numenta", "windowedGaussian"])
def test_own_sweep_is_at_least_as_good(corpus, published, detector):
    _, final = published
    got = score_results_dir(corpus.root / "reference", detector, corpus)
    for profile in corpus.profiles:
        assert got[profile]["score"] >= final[detector][profile] - 1e-9


def test_sweep_matches_direct_scoring(corpus):
    scores = read_scores(corpus.root / "reference", "numenta", corpus)
    thresholds, raw = sweep(corpus, scores, "reward_low_FN_rate")
    assert np.all(np.diff(thresholds) < 0)
    rng = np.random.default_rng(0)
    for k in rng.choice(len(thresholds), 6, replace=False):
        direct = raw_score_at_threshold(
            corpus, scores, corpus.profiles["reward_low_FN_rate"], thresholds[k]
        )
        assert raw[k] == pytest.approx(direct, abs=1e-6)


def test_null_and_perfect_detectors(corpus):
    null = {p: np.zeros(len(s)) for p, s in corpus.streams.items()}
    perfect = {}
    for p, s in corpus.streams.items():
        x = np.zeros(len(s))
        x[s.windows[:, 0]] = 1.0
        perfect[p] = x
    for profile in corpus.profiles:
        assert score_at_threshold(corpus, null, profile, 0.5) == pytest.approx(0.0)
        assert score_at_threshold(corpus, perfect, profile, 0.5) == pytest.approx(100.0)
        assert optimise(corpus, perfect, profile)[1] == pytest.approx(100.0)
        assert optimise(corpus, null, profile)[1] == 0.0


def test_false_positive_weights_follow_preceding_window(corpus):
    relpath = "realKnownCause/nyc_taxi.csv"
    stream = corpus.streams[relpath]
    base = {p: np.zeros(len(s)) for p, s in corpus.streams.items()}
    first, last = stream.windows[0]
    width = last - first + 1

    def fp_cost(index):
        s = dict(base)
        s[relpath] = np.zeros(len(stream))
        s[relpath][index] = 1.0
        return raw_score_at_threshold(corpus, s, corpus.profiles["standard"], 0.5) + 116.0

    just_after = fp_cost(last + 1)
    assert just_after == pytest.approx(0.11 * float(scaled_sigmoid(1.0 / (width - 1))))
    assert -0.11 < fp_cost(last + width) < just_after < 0
    assert fp_cost(stream.probation + 1) == pytest.approx(-0.11)  # before the first window
    assert fp_cost(stream.probation - 1) == 0.0  # probation is ignored
    # Only the earliest detection counts in a window, and it earns the full A_TP at the start.
    s = dict(base)
    s[relpath] = np.zeros(len(stream))
    s[relpath][[first, first + 3, last]] = 1.0
    assert raw_score_at_threshold(corpus, s, corpus.profiles["standard"], 0.5) == pytest.approx(
        -115.0 + 1.0
    )


def test_bad_scores_are_rejected(corpus, tmp_path):
    with pytest.raises(InvalidInput):
        score_at_threshold(corpus, {}, "standard", 0.5)
    short = {p: np.zeros(3) for p in corpus.streams}
    with pytest.raises(InvalidInput):
        optimise(corpus, short, "standard")
    with pytest.raises(InvalidInput):
        optimise(corpus, {p: np.zeros(len(s)) for p, s in corpus.streams.items()}, "nope")


def test_results_layout_round_trip(corpus, tmp_path):
    scores = {p: np.linspace(0, 1, len(s)) for p, s in corpus.streams.items()}
    for p, s in corpus.streams.items():
        write_scores(tmp_path, "ramp", s, scores[p])
    assert (tmp_path / "ramp" / "realKnownCause" / "ramp_nyc_taxi.csv").is_file()
    back = read_scores(tmp_path, "ramp", corpus)
    for p in corpus.streams:
        np.testing.assert_allclose(back[p], scores[p])
