from __future__ import annotations

import numpy as np
import pytest

from atoll.core.errors import InvalidInput, NotFound
from atoll.detect import registry
from atoll.detect.multivariate import Joint


def test_names_and_default():
    names = registry.names()
    for n in (
        "windowed_gaussian",
        "ewma",
        "seasonal",
        "mahalanobis",
        "per_sensor",
        "joint",
        "default",
    ):
        assert n in names
    assert registry.resolve("default") == registry.DEFAULT
    assert registry.get_detector().kind == registry.get_detector(registry.DEFAULT).kind


def test_unknown_name_and_bad_params_are_clear():
    with pytest.raises(NotFound) as e:
        registry.get_detector("nope")
    assert "ewma" in e.value.hint
    with pytest.raises(InvalidInput):
        registry.get_detector("ewma", bogus=1)


def test_for_features_judges_several_sensors_jointly():
    assert isinstance(registry.for_features(3), Joint)
    assert not registry.get_detector().multivariate
    assert not registry.for_features(1).multivariate


def test_restore_rejects_garbage_and_unknown_kinds():
    with pytest.raises(InvalidInput):
        registry.restore(b"not msgpack at all \xff")
    from atoll.detect.state import Snapshot, pack

    with pytest.raises(InvalidInput):
        registry.restore(pack(Snapshot("martian", 1, {})))


def test_restore_checks_kind_and_shapes():
    from atoll.detect.ewma import EWMAZScore
    from atoll.detect.gaussian import WindowedGaussian

    blob = WindowedGaussian(window=10).state()
    with pytest.raises(InvalidInput):
        EWMAZScore.from_state(blob)
    restored = registry.restore(blob)
    assert isinstance(restored, WindowedGaussian) and restored.window == 10
    np.testing.assert_array_equal(restored.buf, np.zeros(10))


def test_public_surface():
    import atoll.detect

    assert sorted(atoll.detect.__all__) == [
        "Condition",
        "DEFAULT",
        "Detector",
        "StreamingDetector",
        "Thresholded",
        "for_features",
        "get_detector",
        "names",
        "register",
        "restore",
    ]
    for name in atoll.detect.__all__:
        assert hasattr(atoll.detect, name)


def test_the_default_with_history_is_the_fitted_model():
    assert registry.resolve("default") == "ensemble"
    assert registry.resolve("default", history=registry.MIN_HISTORY - 1) == "ensemble"
    assert registry.resolve("default", history=registry.MIN_HISTORY) == "fitted"
    assert registry.resolve("ewma", history=10_000) == "ewma"
    joint = registry.for_features(3, history=10_000)
    assert joint.sensors.detector == "fitted"
