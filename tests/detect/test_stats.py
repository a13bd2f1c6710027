from __future__ import annotations

import math

import numpy as np
import pytest

from atoll.detect.stats import as_micros, chi2_cdf, two_sided_tail_score


def test_tail_score_is_monotone_and_never_saturates():
    z = np.linspace(0, 200, 4001)
    s = np.array([two_sided_tail_score(v) for v in z])
    assert s[0] == 0.0 and np.all(np.diff(s) > 0) and s[-1] < 1.0
    assert two_sided_tail_score(1.96) == pytest.approx(0.95, abs=1e-3)
    assert two_sided_tail_score(-3.0) == two_sided_tail_score(3.0)


@pytest.mark.parametrize(
    ("x", "k", "expected"),
    [
        (3.841458820694124, 1, 0.95),
        (5.991464547107979, 2, 0.95),
        (0.0, 3, 0.0),
        (20.0, 4, 0.999500600),
    ],
)
def test_chi2_cdf(x, k, expected):
    assert chi2_cdf(x, k) == pytest.approx(expected, abs=1e-6)


def test_chi2_cdf_two_dof_closed_form():
    for x in (0.1, 1.0, 7.5, 40.0):
        assert chi2_cdf(x, 2) == pytest.approx(1 - math.exp(-x / 2), abs=1e-12)


def test_as_micros():
    ts = np.array(["2024-01-01T00:00:01"], dtype="datetime64[s]")
    assert as_micros(ts)[0] == 1704067201_000_000
    assert as_micros(None) is None
