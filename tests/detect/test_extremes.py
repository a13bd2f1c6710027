from atoll.detect.extremes import range_break


def test_inside_range_is_zero_and_breaks_grow_with_excess():
    assert range_break(5.0, 0.0, 10.0) == 0.0
    assert range_break(10.0, 0.0, 10.0) == 0.0
    assert range_break(11.0, 0.0, 10.0) == 0.6
    assert range_break(-2.0, 0.0, 10.0) == 0.7
    assert range_break(100.0, 0.0, 10.0) == 1.0


def test_empty_range_is_silent():
    assert range_break(3.0, 2.0, 2.0) == 0.0
