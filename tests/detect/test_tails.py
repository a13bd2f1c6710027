import numpy as np

from atoll.detect.tails import tail_excess, tail_push


def _fill(values, size):
    ring, ordered = np.zeros(size), np.zeros(size)
    for count, x in enumerate(values):
        tail_push(float(x), ring, ordered, count)
    return ring, ordered


def test_sorted_copy_tracks_the_ring_through_evictions():
    rng = np.random.default_rng(5)
    values = np.round(rng.normal(0, 1, 700), 1)  # rounding forces duplicate evictions
    for size in (1, 7, 64):
        ring, ordered = _fill(values, size)
        np.testing.assert_array_equal(ordered, np.sort(values[-size:]))
        assert sorted(ring) == sorted(values[-size:])


def test_partly_filled_sample():
    _, ordered = _fill([3.0, 1.0, 2.0], 8)
    np.testing.assert_array_equal(ordered[:3], [1.0, 2.0, 3.0])
    # Quantile ranks round down: with 3 samples the 99 % point is the middle one.
    assert tail_excess(10.0, ordered, 3, 0.01) == (10.0 - 2.0) / (2.0 - 1.0)


def test_excess_in_band_widths_both_sides_and_zero_inside():
    _, ordered = _fill(np.arange(101, dtype=float), 128)  # 0..100: 1 %..99 % band is 1..99
    assert tail_excess(50.0, ordered, 101, 0.01) == 0.0
    assert tail_excess(99.0 + 2 * 98.0, ordered, 101, 0.01) == 2.0
    assert tail_excess(1.0 - 98.0, ordered, 101, 0.01) == 1.0


def test_old_spike_leaves_the_sample():
    # A range never forgets a spike; the tail sample does, so a later, smaller one is seen again.
    values = np.concatenate([[1000.0], np.random.default_rng(2).normal(0, 1, 300)])
    _, ordered = _fill(values, 256)
    assert ordered.max() < 10
    assert tail_excess(200.0, ordered, len(values), 0.01) > 4


def test_no_band_no_score():
    _, ordered = _fill([5.0] * 20, 16)
    assert tail_excess(6.0, ordered, 20, 0.01) == 0.0
    assert tail_excess(6.0, ordered, 1, 0.01) == 0.0
