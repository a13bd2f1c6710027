import os
import signal
import subprocess
import sys
import uuid

import numpy as np
import pytest

from atoll.core.errors import InvalidInput, Unavailable
from atoll.core.points import PointBatch, SeriesKey
from atoll.store.duckdb import DuckDBStore
from atoll.testing.store import STORE_CHECKS


# "eager" folds appended points into the rollup tiers after every append, so answers come from
# the tiers (upsert path) alone; "mixed" folds every 5,000 points, so the larger checks query
# buckets that are part tier rows, part raw points not folded in yet, and small ones raw only.
@pytest.fixture(params=["mixed", "eager"])
def make_store(request, tmp_path):
    every = {"mixed": 5_000, "eager": 1}[request.param]
    return lambda: DuckDBStore(tmp_path / f"{uuid.uuid4().hex}.duckdb", compact_points=every)


def reopen(store):
    store.close()
    return DuckDBStore(store.path)


@pytest.mark.parametrize("check", STORE_CHECKS, ids=lambda c: c.__name__)
def test_conformance(check, make_store):
    check(make_store, reopen)


CHILD = """
import sys
import numpy as np
from atoll.core.points import PointBatch, SeriesKey
from atoll.store.duckdb import DuckDBStore

store = DuckDBStore(sys.argv[1])
key = SeriesKey("plant", "pump", "t")
for i in range(100_000):
    ts = (i * 1000 + np.arange(1000, dtype=np.int64)) * 1_000_000
    store.append(PointBatch.of_series(key, ts, np.full(1000, float(i))))
    print("acked", i, flush=True)
"""


def test_every_acked_point_survives_kill_9(tmp_path):
    path = tmp_path / "crash.duckdb"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path)], stdout=subprocess.PIPE, text=True
    )
    acked = -1
    try:
        for line in child.stdout:
            acked = int(line.split()[1])
            if acked >= 40:
                break
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    assert acked >= 40, "child died before acknowledging anything"

    store = DuckDBStore(path)
    try:
        key = SeriesKey("plant", "pump", "t")
        raw = store.query_raw(key, 0, 2**62)
        n = len(raw.ts)
        assert n >= (acked + 1) * 1000  # every acknowledged batch is there
        assert n % 1000 == 0  # and batches are all-or-nothing
        assert raw.ts.tolist() == (np.arange(n, dtype=np.int64) * 1_000_000).tolist()
        assert raw.value.tolist() == np.repeat(np.arange(n // 1000, dtype=float), 1000).tolist()
        # Rollups were committed with the points they summarise.
        hourly = store.query_buckets(key, 0, 2**62, 3_600_000_000)
        assert int(hourly.columns["count"].sum()) == n
        assert store.latest("plant") == {key: ((n - 1) * 1_000_000, float(n // 1000 - 1))}
    finally:
        store.close()


def test_a_file_held_by_another_process_is_unavailable_with_a_hint(tmp_path):
    path = tmp_path / "held.duckdb"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(Unavailable) as e:
            DuckDBStore(path)
        assert "another" in e.value.hint
    finally:
        holder.kill()
        holder.wait()


HOLD = """
import sys, time
from atoll.store.duckdb import DuckDBStore
store = DuckDBStore(sys.argv[1])
print("open", flush=True)
time.sleep(60)
"""


def test_unknown_setting_is_invalid_input(tmp_path):
    with pytest.raises(InvalidInput):
        DuckDBStore(tmp_path / "x.duckdb", config={"no_such_setting": "1"})


def test_wide_queries_are_answered_from_rollups_not_raw_points(tmp_path):
    store = DuckDBStore(tmp_path / "tiers.duckdb")
    try:
        key = SeriesKey("plant", "pump", "t")
        hour = 3_600_000_000
        ts = np.arange(3 * 24 * 3600, dtype=np.int64) * 1_000_000  # 3 days at 1 Hz, aligned
        store.append(PointBatch.of_series(key, ts, np.sin(ts / 1e10)))
        store.compact()
        want = store.query_buckets(key, 0, 3 * 24 * hour, hour)
        # Remove the raw points behind the store's back: only rollups can answer now.
        with store._db.cursor() as cur:
            cur.execute("DELETE FROM points").fetchall()
        got = store.query_buckets(key, 0, 3 * 24 * hour, hour)
        assert got.columns["count"].tolist() == [3600] * 72
        for agg in ("min", "max", "first", "last"):
            assert got.columns[agg].tolist() == want.columns[agg].tolist()
        chart = store.query_chart(key, 0, 3 * 24 * hour, 50)  # 1.4 h per pixel: hourly tier
        assert 50 <= len(chart.ts) <= 100
        assert len(store.query_chart(key, 0, 3 * 24 * hour, 2000).ts) > 2000  # minute tier
        assert len(store.query_raw(key, 0, 3 * 24 * hour).ts) == 0
    finally:
        store.close()


def test_appends_after_retention_emptied_the_store_and_a_reopen_still_reach_the_tiers(tmp_path):
    key = SeriesKey("plant", "pump", "t")
    hour = 3_600_000_000
    store = DuckDBStore(tmp_path / "r.duckdb")
    store.append(PointBatch.of_series(key, [1, 2], [1.0, 2.0]))
    assert store.delete_before("plant", 2**62) == 2
    store.close()
    store = DuckDBStore(tmp_path / "r.duckdb")
    try:
        store.append(PointBatch.of_series(key, [hour, hour + 1], [3.0, 4.0]))
        store.compact()
        with store._db.cursor() as cur:  # only the tiers can answer now
            cur.execute("DELETE FROM points").fetchall()
        b = store.query_buckets(key, 0, 2**62, hour)
        assert b.start.tolist() == [hour] and b.columns["count"].tolist() == [2]
    finally:
        store.close()


RESEND_CHILD = """
import sys
import numpy as np
from atoll.core.points import PointBatch, SeriesKey
from atoll.store.duckdb import DuckDBStore

store = DuckDBStore(sys.argv[1], compact_points=3_500)
key = SeriesKey("plant", "pump", "t")
for i in range(100_000):
    ts = (i * 1000 + np.arange(1000, dtype=np.int64)) * 1_000_000
    store.append(PointBatch.of_series(key, ts, np.full(1000, float(i))))
    print("new", i, flush=True)
    if i:  # the previous block again, corrected: replaces stored points, rebuilds buckets
        store.append(PointBatch.of_series(key, ts - 1000 * 1_000_000, np.full(1000, i - 0.5)))
        print("fixed", i - 1, flush=True)
"""


def test_acked_replacements_survive_kill_9_and_the_tiers_match_the_raw_points(tmp_path):
    path = tmp_path / "crash.duckdb"
    child = subprocess.Popen(
        [sys.executable, "-c", RESEND_CHILD, str(path)], stdout=subprocess.PIPE, text=True
    )
    acked = {"new": -1, "fixed": -1}
    try:
        for line in child.stdout:
            what, i = line.split()
            acked[what] = int(i)
            if acked["fixed"] >= 12:
                break
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    assert acked["fixed"] >= 12, "child died before acknowledging replacements"

    store = DuckDBStore(path)
    try:
        key = SeriesKey("plant", "pump", "t")
        raw = store.query_raw(key, 0, 2**62)
        n = len(raw.ts)
        assert n % 1000 == 0 and n >= (acked["new"] + 1) * 1000
        # Each timestamp once, however often its block was written.
        assert raw.ts.tolist() == (np.arange(n, dtype=np.int64) * 1_000_000).tolist()
        blocks = raw.value.reshape(-1, 1000)
        for j, block in enumerate(blocks):
            assert len(set(block.tolist())) == 1, f"block {j} half replaced"
            assert block[0] in (j, j + 0.5), (j, block[0])
            if j <= acked["fixed"]:
                assert block[0] == j + 0.5, f"acknowledged correction of block {j} lost"
        for bucket in (60_000_000, 3_600_000_000, 7_000_000):
            b = store.query_buckets(key, 0, 2**62, bucket)
            start = raw.ts // bucket * bucket
            starts, first, count = np.unique(start, return_index=True, return_counts=True)
            assert b.start.tolist() == starts.tolist()
            assert b.columns["count"].tolist() == count.tolist()
            assert b.columns["first"].tolist() == raw.value[first].tolist()
            assert b.columns["max"].tolist() == np.maximum.reduceat(raw.value, first).tolist()
            sums = np.add.reduceat(raw.value, first)
            np.testing.assert_allclose(b.columns["avg"], sums / count, rtol=1e-12)
        assert store.latest("plant") == {key: (int(raw.ts[-1]), float(raw.value[-1]))}
    finally:
        store.close()


def test_duplicates_stored_before_points_had_an_identity_go_when_re_sent(tmp_path):
    key = SeriesKey("plant", "pump", "t")
    ts = np.arange(600, dtype=np.int64) * 1_000_000
    store = DuckDBStore(tmp_path / "legacy.duckdb")
    try:
        store.append(PointBatch.of_series(key, ts, np.ones(600)))
        store.compact()
        with store._db.cursor() as cur:  # what an append-only version left behind
            cur.execute("INSERT INTO points SELECT * FROM points WHERE ts < 60000000").fetchall()
        assert len(store.query_raw(key, 0, 2**62).ts) == 660
        store.append(PointBatch.of_series(key, ts[:30], np.full(30, 2.0)))
        store.append(PointBatch.of_series(key, ts[30:60], np.ones(30)))  # same value, 2 copies
        raw = store.query_raw(key, 0, 2**62)
        assert raw.ts.tolist() == ts.tolist()
        assert raw.value.tolist() == [2.0] * 30 + [1.0] * 570
        b = store.query_buckets(key, 0, 2**62, 60_000_000)
        assert b.columns["count"].tolist() == [60] * 10
        assert b.columns["avg"][0] == 1.5 and b.columns["max"][0] == 2.0
    finally:
        store.close()


def test_raw_counts_of_many_series_in_one_query(make_store):
    from atoll.testing.store import check_raw_counts

    check_raw_counts(make_store)
