from __future__ import annotations

import numpy as np
import pytest

from atoll.core.errors import InvalidInput
from atoll.detect.mahalanobis import Mahalanobis
from atoll.detect.multivariate import Joint, PerSensor, combine
from atoll.detect.registry import REGISTRY


def _correlated(n, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n)
    return np.column_stack([a, a + 0.05 * rng.normal(size=n)])


def test_combiners():
    assert combine(np.array([0.5, 0.7]), "max") == 0.7
    assert combine(np.array([0.5, 0.999]), "sidak") == pytest.approx(0.999**2)
    assert combine(np.array([]), "sidak") == 0.0
    # Fisher: several moderately odd sensors add up to a strong joint signal.
    assert combine(np.array([0.99] * 5), "fisher") > combine(np.array([0.99] * 5), "sidak")
    assert 0.0 <= combine(np.array([0.0, 0.0]), "fisher") <= 0.01
    with pytest.raises(InvalidInput):
        PerSensor(combine="vote", catalog=REGISTRY)


def test_broken_correlation_is_caught_only_jointly():
    x = _correlated(600)
    odd = np.array([1.0, -1.0])  # each value is ordinary; together they never happen
    per, joint, maha = (
        PerSensor("ewma", catalog=REGISTRY),
        Joint("ewma", catalog=REGISTRY),
        Mahalanobis(),
    )
    for d in (per, joint, maha):
        d.score_many(x)
    assert per.score_one(odd) < 0.9
    assert maha.score_one(odd) > maha.default_threshold
    assert joint.score_one(odd) >= joint.default_threshold
    assert joint.score_one(np.array([0.5, 0.5])) < 0.9


def test_single_sensor_spike_is_caught_by_joint():
    x = _correlated(600)
    d = Joint("ewma", catalog=REGISTRY)
    d.score_many(x)
    assert d.score_one(np.array([0.0, 12.0])) >= d.default_threshold


def test_width_is_fixed_by_first_reading():
    d = Joint("ewma", catalog=REGISTRY)
    d.learn_one(np.array([1.0, 2.0, 3.0]))
    with pytest.raises(InvalidInput):
        d.score_one(np.array([1.0, 2.0]))
    m = Mahalanobis()
    m.learn_one(np.array([1.0, 2.0]))
    with pytest.raises(InvalidInput):
        m.learn_one(np.array([1.0]))


def test_joint_memory_grows_with_sensors_not_with_time():
    a, b = Joint("ewma", catalog=REGISTRY), Joint("ewma", catalog=REGISTRY)
    a.score_many(_correlated(100))
    b.score_many(_correlated(5000))
    assert a.nbytes() == b.nbytes() < 1024


def test_joint_works_with_uncalibrated_default_detector():
    # The default detector's threshold is not a tail probability; joint decisions still line up.
    x = _correlated(1500, seed=4)
    d = Joint(catalog=REGISTRY)
    d.score_many(x)
    assert d.score_one(np.array([1.0, -1.0])) >= d.default_threshold
    assert d.score_one(np.array([0.2, 0.2])) < d.default_threshold


def test_threshold_is_the_sensor_detectors_before_any_reading():
    from atoll.detect.registry import get_detector
    from atoll.detect.threshold import Thresholded

    assert Joint(catalog=REGISTRY).default_threshold == get_detector("default").default_threshold
    assert (
        Thresholded(Joint("ewma", catalog=REGISTRY)).threshold
        == get_detector("ewma").default_threshold
    )


def test_per_sensor_fits_each_sensor_and_any_sensor_raises_the_condition():
    t = np.arange(3000)
    rng = np.random.default_rng(5)
    x = np.column_stack([np.sin(2 * np.pi * t / 50), np.cos(2 * np.pi * t / 70)])
    x += rng.normal(0, 0.05, x.shape)
    live = x[2000:].copy()
    live[300:500, 1] += 0.8
    for det in (
        PerSensor(detector="fitted", catalog=REGISTRY),
        Joint(detector="fitted", catalog=REGISTRY),
    ):
        det.fit(x[:2000])
        sensors = det.sensors if isinstance(det, Joint) else det
        assert [c.describe()["history"] for c in sensors.children] == [2000, 2000]
        _, flags = det.detect_many(live)
        assert flags[310:500].all() and not flags[:300].any() and not flags[600:].any()
