"""Every registered detector passes the Detector conformance suite."""

from __future__ import annotations

import pytest

from atoll.detect.registry import get_detector, names
from atoll.testing.detect import check_detector


@pytest.mark.parametrize("name", names())
def test_registered_detector_conforms(name):
    check_detector(lambda: get_detector(name))


def test_thresholded_wrapper_conforms():
    from atoll.detect.threshold import Thresholded

    check_detector(lambda: Thresholded(get_detector("ewma"), threshold=0.999))
