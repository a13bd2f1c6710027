import numpy as np
import pytest

from atoll.core.errors import InvalidInput
from atoll.detect.base import StreamingDetector
from atoll.detect.ensemble import EnsembleDetector
from atoll.detect.port import Detector


def _series(n=3000, seed=1):
    """Daily-ish seasonal signal with noise, a spike and a level shift."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    x = 50 + 10 * np.sin(2 * np.pi * t / 288) + rng.normal(0, 1, n)
    if n > 2500:
        x[1800] += 60
        x[2500:] += 25
    return x


def test_is_a_detector():
    d = EnsembleDetector()
    assert isinstance(d, Detector)
    assert isinstance(d, StreamingDetector)


def test_scores_in_unit_interval_and_finite():
    x = _series()
    x[100] = np.nan
    x[200] = np.inf
    s = EnsembleDetector().score_many(x)
    assert s.shape == x.shape
    assert np.all(np.isfinite(s))
    assert s.min() >= 0.0 and s.max() <= 1.0
    assert s[100] == 0.0 and s[200] == 0.0


def test_flags_spike_and_shift_but_not_calm_noise():
    x = _series()
    s = EnsembleDetector().score_many(x)
    thr = EnsembleDetector.default_threshold
    assert s[1800] >= thr
    assert s[2500:2520].max() >= thr
    # After warm-up the calm seasonal stretch raises (almost) no alarms.
    assert (s[600:1800] >= thr).sum() <= 2


def test_one_at_a_time_equals_batch():
    x = _series(1200)
    batch = EnsembleDetector().score_many(x)
    d = EnsembleDetector()
    single = []
    for v in x:
        single.append(d.score_one(v))
        d.learn_one(v)
    np.testing.assert_array_equal(batch, np.array(single))


def test_score_one_does_not_learn():
    d = EnsembleDetector()
    d.score_many(_series(500))
    before = d.state()
    d.score_one(1e6)
    assert d.state() == before


@pytest.mark.parametrize("cut", [5, 400, 1900])
def test_state_round_trip_mid_stream(cut):
    x = _series()
    full = EnsembleDetector().score_many(x)
    d = EnsembleDetector()
    head = d.score_many(x[:cut])
    blob = d.state()
    assert isinstance(blob, bytes)
    tail = EnsembleDetector.from_state(blob).score_many(x[cut:])
    np.testing.assert_array_equal(np.concatenate([head, tail]), full)


@pytest.mark.parametrize(
    "params",
    [{}, {"scales": (), "tail_size": 0, "mean_window": 1}],
    ids=["default", "bursts-and-range-only"],
)
def test_future_values_do_not_change_past_scores(params):
    x = _series()
    y = x.copy()
    rng = np.random.default_rng(7)
    y[1500:] = rng.normal(0, 100, len(y) - 1500)
    sx = EnsembleDetector(**params).score_many(x)
    sy = EnsembleDetector(**params).score_many(y)
    np.testing.assert_array_equal(sx[:1500], sy[:1500])
    assert not np.array_equal(sx[1500:], sy[1500:])


def test_memory_is_bounded():
    d = EnsembleDetector()
    d.score_many(_series(1000))
    small = (d.nbytes(), len(d.state()))
    d.score_many(_series(20000, seed=3))
    assert (d.nbytes(), len(d.state())) == small
    assert d.nbytes() < 80 * 1024


def test_params_round_trip_and_validation():
    d = EnsembleDetector(quiet=10, scales=[(32, 2, 50, 0.5)])
    assert EnsembleDetector(**d.params()).params() == d.params()
    with pytest.raises(InvalidInput):
        EnsembleDetector(scales=[(32, 2, 0, 0.5)])
    with pytest.raises(InvalidInput):
        EnsembleDetector(scales=[(30, 2, 50, 0.5)])  # not a multiple of blocks
    with pytest.raises(InvalidInput):
        EnsembleDetector(lik_alpha=2.0)
    with pytest.raises(InvalidInput):
        EnsembleDetector().score_one(np.array([1.0, 2.0]))


def test_no_start_up_alarms_on_a_regular_signal():
    # Each novelty scale stays silent until its likelihood has seen real values, so a steady
    # signal raises no alarm at a fixed reading number when the scales come online.
    t = np.arange(3000)
    x = 20 + 5 * np.sin(2 * np.pi * t / 100) + np.random.default_rng(3).normal(0, 0.1, 3000)
    s = EnsembleDetector().score_many(x)
    assert (s >= EnsembleDetector.default_threshold).sum() == 0


def test_tail_break_sees_a_spike_smaller_than_an_old_one():
    # One early huge spike stretches the range for good; the tail sample forgets it.
    x = 10 + np.random.default_rng(4).normal(0, 1, 3000)
    x[300] += 1000
    x[2500] += 100
    thr = EnsembleDetector.default_threshold
    assert EnsembleDetector().score_many(x)[2500] >= thr
    assert EnsembleDetector(tail_size=0).score_many(x)[2500] < thr
    with pytest.raises(InvalidInput):
        EnsembleDetector(tail_q=0.5)


@pytest.mark.parametrize("cut", [7, 1333])
def test_state_round_trip_while_the_tail_sample_evicts(cut):
    # A small tail sample is full long before the cut, so the restored ring and its sorted copy
    # must agree for evictions to continue exactly.
    x = _series()
    params = {"tail_size": 16, "tail_stride": 2, "tail_margin": 1.0}
    full = EnsembleDetector(**params).score_many(x)
    d = EnsembleDetector(**params)
    head = d.score_many(x[:cut])
    tail = EnsembleDetector.from_state(d.state()).score_many(x[cut:])
    np.testing.assert_array_equal(np.concatenate([head, tail]), full)
    without_tail = EnsembleDetector(**{**params, "tail_size": 0}).score_many(x)
    assert not np.array_equal(full, without_tail)  # the tail signal takes part here


def test_burst_channel_sees_a_new_oscillation_inside_the_range():
    # A slow cycle starts to chatter between values it visits anyway: no range or tail break,
    # and block means hardly change, but the stream's roughness jumps.
    rng = np.random.default_rng(2)
    t = np.arange(4000)
    x = 10 + 5 * np.sin(2 * np.pi * t / 500) + rng.normal(0, 0.1, 4000)
    x[3000:3300] += np.where(np.arange(300) % 2, 1.0, -1.0)
    thr = EnsembleDetector.default_threshold
    assert EnsembleDetector().score_many(x)[3000:3030].max() >= thr
    assert EnsembleDetector(burst_window=0).score_many(x)[3000:3030].max() < thr


@pytest.mark.parametrize(
    "bad",
    [
        {"burst_window": 1},
        {"burst_window": -2},
        {"burst_gate": 0.0},
        {"burst_gate": 1.5},
        {"burst_floor": 0.0},
        {"burst_alpha": 0.0},
        {"burst_alpha": 1.5},
    ],
)
def test_burst_settings_are_validated(bad):
    with pytest.raises(InvalidInput):
        EnsembleDetector(**bad)
