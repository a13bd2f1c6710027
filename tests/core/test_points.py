import numpy as np

from atoll.core.points import PointBatch, SeriesKey


def test_concat_dedupes_keys_and_split_sorts_by_time():
    a = SeriesKey("p", "d1", "t")
    b = SeriesKey("p", "d2", "t")
    x = PointBatch.of_series(a, [3, 1], [30.0, 10.0])
    y = PointBatch((b, a), np.array([0, 1], np.int32), np.array([5, 2]), np.array([50.0, 20.0]))
    merged = PointBatch.concat([x, y])
    assert merged.keys == (a, b)
    parts = merged.split()
    assert parts[a][0].tolist() == [1, 2, 3]
    assert parts[a][1].tolist() == [10.0, 20.0, 30.0]
    assert parts[b][1].tolist() == [50.0]
