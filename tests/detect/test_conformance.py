"""Every registered detector, and every wrapper, passes the Detector conformance suite."""

from __future__ import annotations

import numpy as np
import pytest

from atoll.core.errors import InvalidInput
from atoll.detect import registry
from atoll.detect.port import Catalog, Detector
from atoll.detect.registry import REGISTRY, get_detector, names
from atoll.detect.threshold import Thresholded
from atoll.testing.detect import check_detector


@pytest.mark.parametrize("name", names())
def test_registered_detector_conforms(name):
    check_detector(lambda: get_detector(name), catalog=REGISTRY)


def test_thresholded_wrapper_conforms():
    check_detector(lambda: Thresholded(get_detector("ewma"), threshold=0.999), catalog=REGISTRY)


@pytest.mark.parametrize("name", ["ewma", "default"])
def test_several_sensors_judged_jointly_conform(name):
    check_detector(lambda: Thresholded(registry.for_features(3, name)), catalog=REGISTRY, n=800)


def test_the_registry_is_the_catalog_composites_are_given():
    assert isinstance(REGISTRY, Catalog)
    joint = get_detector("joint", detector="ewma")
    assert joint.sensors.catalog is REGISTRY
    restored = registry.restore(joint.state())
    assert restored.sensors.catalog is REGISTRY


def test_every_detector_class_offers_the_whole_port():
    members = {name for name in vars(Detector) if not name.startswith("_")}
    assert members == {
        "default_threshold",
        "multivariate",
        "learn_one",
        "fit",
        "score_one",
        "score_many",
        "state",
        "from_state",
        "nbytes",
    }
    for cls in registry.DETECTORS + registry.WRAPPERS:
        for member in members:
            assert hasattr(cls, member), (cls.__name__, member)


@pytest.mark.parametrize("cls", registry.WRAPPERS + registry._COMPOSITES, ids=lambda c: c.kind)
def test_wrappers_restored_without_a_catalog_say_how(cls):
    inner = get_detector("ewma")
    det = Thresholded(inner) if cls is Thresholded else get_detector(cls.kind, detector="ewma")
    det.score_many(np.arange(5.0).reshape(5, 1) if det.multivariate else np.arange(5.0))
    with pytest.raises(InvalidInput, match="catalog") as e:
        cls.from_state(det.state())
    assert "atoll.detect.restore" in e.value.hint
