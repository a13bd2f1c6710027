from atoll.detect.extremes import range_break, supported_break


def test_inside_range_is_zero_and_breaks_grow_with_excess():
    assert range_break(5.0, 0.0, 10.0) == 0.0
    assert range_break(10.0, 0.0, 10.0) == 0.0
    assert range_break(11.0, 0.0, 10.0) == 0.6
    assert range_break(-2.0, 0.0, 10.0) == 0.7
    assert range_break(100.0, 0.0, 10.0) == 1.0


def test_empty_range_is_silent():
    assert range_break(3.0, 2.0, 2.0) == 0.0


def test_break_of_the_mean_counts_only_if_the_reading_takes_part():
    # The rolling mean (11) broke the old mean high (10); the reading itself did too.
    assert supported_break(11.0, 12.0, 0.0, 10.0) == range_break(11.0, 0.0, 10.0)
    # The mean crept over the bound while the newest reading sits inside the range: no news.
    assert supported_break(11.0, 5.0, 0.0, 10.0) == 0.0
    assert supported_break(-1.0, -3.0, 0.0, 10.0) == range_break(-1.0, 0.0, 10.0)
    assert supported_break(-1.0, 4.0, 0.0, 10.0) == 0.0
    assert supported_break(5.0, 20.0, 0.0, 10.0) == 0.0  # the mean is inside
