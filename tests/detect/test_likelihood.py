import math

from atoll.detect.likelihood import log_tail_score


def test_below_mean_is_zero():
    assert log_tail_score(0.5, 1.0, 1.0) == 0.0
    assert log_tail_score(1.0, 1.0, 1.0) == 0.0


def test_matches_gaussian_tail():
    # z = 3 -> tail 0.00135 -> -log10 / 10 ~ 0.287
    tail = 0.5 * math.erfc(3 / math.sqrt(2))
    assert math.isclose(log_tail_score(3.0, 0.0, 1.0), -math.log10(tail) / 10, rel_tol=1e-6)


def test_monotone_and_capped():
    vals = [log_tail_score(z, 0.0, 1.0) for z in (1, 2, 4, 8, 100)]
    assert vals == sorted(vals)
    assert vals[-1] == 1.0
