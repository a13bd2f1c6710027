import uuid

import pytest

from atoll.core.errors import Unavailable
from atoll.store import open_store
from atoll.store.postgres import PostgresStore
from atoll.testing.postgres import database_fixture
from atoll.testing.store import STORE_CHECKS

database_url = database_fixture("atoll_store", scope="session")


@pytest.fixture
def make_store(database_url):
    # A schema per store: every check starts empty, without the cost of a database each.
    return lambda: PostgresStore(database_url, schema=f"s_{uuid.uuid4().hex[:12]}")


def reopen(store):
    store.close()
    return PostgresStore(store.url, schema=store.schema)


@pytest.mark.parametrize("check", STORE_CHECKS, ids=lambda c: c.__name__)
def test_conformance(check, make_store):
    check(make_store, reopen)


def test_open_store_url_with_schema(database_url):
    store = open_store(f"{database_url}?schema=s_{uuid.uuid4().hex[:8]}")
    assert isinstance(store, PostgresStore) and store.schema.startswith("s_")
    store.close()


def test_unreachable_server_is_unavailable_with_a_hint():
    with pytest.raises(Unavailable) as e:
        PostgresStore("postgresql://postgres@127.0.0.1:1/nothing?connect_timeout=2")
    assert e.value.hint


def test_two_writers_sending_the_same_points_store_them_once(database_url):
    """Two store objects are two PostgreSQL sessions, like two Atoll processes: each locks the
    series it writes, so neither can miss the other's points and store them again."""
    import threading

    import numpy as np

    from atoll.core.points import PointBatch, SeriesKey

    schema = f"s_{uuid.uuid4().hex[:12]}"
    stores = [PostgresStore(database_url, schema=schema) for _ in range(2)]
    keys = (SeriesKey("plant", "pump", "a"), SeriesKey("plant", "pump", "b"))
    s = 1_000_000
    batches = []
    for i in range(40):  # overlapping windows: every point is sent by both writers, twice
        ts = (i * 50 + np.arange(100, dtype=np.int64)) * 7 * s
        batches.append(
            PointBatch(
                keys,
                np.tile(np.arange(2, dtype=np.int32), 100),
                np.repeat(ts, 2),
                np.repeat(ts / s, 2),
            )
        )
    errors = []
    together = threading.Barrier(2, timeout=30)  # both send each batch at the same moment

    def write(store):
        try:
            for batch in batches:
                together.wait()
                store.append(batch)
        except BaseException as e:  # noqa: BLE001 - reported by the test
            errors.append(e)

    threads = [threading.Thread(target=write, args=(st,)) for st in stores]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not errors, errors
        want = np.unique(np.concatenate([b.ts for b in batches]))
        for key in keys:
            raw = stores[0].query_raw(key, 0, 2**62)
            assert raw.ts.tolist() == want.tolist()
            for bucket in (60 * s, 3600 * s, 11 * s):
                b = stores[1].query_buckets(key, 0, 2**62, bucket)
                starts, count = np.unique(want // bucket * bucket, return_counts=True)
                assert b.start.tolist() == starts.tolist()
                assert b.columns["count"].tolist() == count.tolist()
        assert stores[0].latest("plant")[keys[0]] == (int(want[-1]), float(want[-1] / s))
    finally:
        for store in stores:
            store.close()


def test_a_batch_of_more_series_than_the_lock_table_holds(database_url):
    """40,000 series in one append: one advisory lock each overflowed PostgreSQL's lock table
    (64 per connection by default, "out of shared memory"); a lock per id modulo 1,024 fits."""
    import numpy as np

    from atoll.core.points import PointBatch, SeriesKey

    store = PostgresStore(database_url, schema=f"s_{uuid.uuid4().hex[:12]}")
    try:
        keys = tuple(SeriesKey("fleet", f"dev-{i // 4}", f"m{i % 4}") for i in range(40_000))
        ts = np.full(len(keys), 1_790_000_000_000_000, dtype=np.int64)
        store.append(PointBatch(keys, np.arange(len(keys), dtype=np.int32), ts, np.ones(len(keys))))
        assert len(store.latest("fleet")) == len(keys)
    finally:
        store.close()
