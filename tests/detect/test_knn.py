import numpy as np

from atoll.detect.knn import nearest_distance


def test_nearest_distance_is_rms_to_closest_row():
    bank = np.array([[0.0, 0.0], [3.0, 4.0], [10.0, 10.0]])
    assert nearest_distance(bank, 3, np.array([3.0, 4.0])) == 0.0
    assert np.isclose(nearest_distance(bank, 3, np.array([3.0, 5.0])), np.sqrt(1 / 2))
    # Only the first ``count`` rows are the bank.
    assert np.isclose(nearest_distance(bank, 1, np.array([3.0, 4.0])), np.sqrt(25 / 2))


def test_matches_brute_force():
    rng = np.random.default_rng(0)
    bank = rng.normal(size=(200, 8))
    w = rng.normal(size=8)
    brute = np.sqrt(((bank - w) ** 2).mean(axis=1).min())
    assert np.isclose(nearest_distance(bank, 200, w), brute)
