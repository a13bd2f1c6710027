import numpy as np

from atoll.store import rollup


def test_partials_of_an_unsorted_multi_series_batch_match_brute_force():
    rng = np.random.default_rng(0)
    n = 5000
    sid = rng.integers(1, 4, n).astype(np.int32)
    ts = rng.integers(-50_000, 50_000, n).astype(np.int64)  # also before the epoch
    value = rng.integers(-20, 20, n).astype(np.float64)  # many ties, to test argmin/argmax
    got = rollup.of_points(sid, ts, value, 1000)
    rows = list(zip(*(got[c].tolist() for c in rollup.COLUMNS), strict=True))
    assert len(rows) == len(
        {(s, b) for s, b in zip(sid.tolist(), (ts // 1000 * 1000).tolist(), strict=True)}
    )
    for s, b, vmin, tmin, vmax, tmax, vsum, cnt, tfirst, vfirst, tlast, vlast in rows:
        m = (sid == s) & (ts >= b) & (ts < b + 1000)
        t, v = ts[m], value[m]
        assert (vmin, vmax, cnt) == (v.min(), v.max(), m.sum())
        assert vsum == v.sum()
        assert tmin in t[v == vmin] and tmax in t[v == vmax]
        assert (tfirst, tlast) == (t.min(), t.max())
        assert vfirst in v[t == tfirst] and vlast in v[t == tlast]


def test_latest_of_picks_the_newest_row_per_series():
    rows = rollup.of_points(
        np.array([2, 1, 1, 2]), np.array([5, 70, 3, 1]), np.array([1.0, 2.0, 3.0, 4.0]), 10
    )
    assert rollup.latest_of(rows) == {1: (70, 2.0), 2: (5, 1.0)}
