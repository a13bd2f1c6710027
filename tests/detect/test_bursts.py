import math

import numpy as np

from atoll.detect.bursts import burst_ratio, kth_with
from atoll.detect.tails import tail_push


def test_kth_with_merges_one_value_into_a_sorted_sample():
    rng = np.random.default_rng(8)
    for n in (0, 1, 5, 27):
        ordered = np.sort(np.round(rng.normal(0, 1, n), 1))  # rounding forces ties
        for extra in (-5.0, 0.0, float(ordered[n // 2]) if n else 0.3, 5.0):
            merged = np.sort(np.append(ordered, extra))
            for k in range(n + 1):
                assert kth_with(ordered, n, extra, k) == merged[k]


def test_rolling_median_of_errors_ignores_one_spike():
    # The ring of the last 27 errors plus the current one: one spike moves the median little.
    ring, ordered = np.zeros(27), np.zeros(27)
    errors = np.abs(np.diff(10 + np.random.default_rng(1).normal(0, 1, 200)))
    for count, e in enumerate(errors):
        tail_push(float(e), ring, ordered, count)
    calm = kth_with(ordered, 27, float(errors[-1]), 14)
    spiky = kth_with(ordered, 27, 1000.0, 14)
    assert spiky < 1.5 * calm


def test_burst_ratio_is_zero_unless_rougher_than_usual():
    assert burst_ratio(1.0, 2.0, 0.01) == 0.0
    assert burst_ratio(2.0, 2.0, 0.01) == 0.0
    assert math.isclose(burst_ratio(4.0, 2.0, 1e-9), math.log(2.0), rel_tol=1e-6)
    # Below the floor, roughness changes barely count: a flat stream's jitter is not a burst.
    assert burst_ratio(1e-6, 0.0, 0.1) < 1e-4
