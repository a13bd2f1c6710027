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


def test_each_writer_session_gets_its_own_stamp_slot_until_it_closes(database_url):
    schema = f"s_{uuid.uuid4().hex[:12]}"
    a, b = PostgresStore(database_url, schema=schema), PostgresStore(database_url, schema=schema)
    try:
        assert a.stamp_slot().of == b.stamp_slot().of == 100
        assert a.stamp_slot() == a.stamp_slot() and a.stamp_slot().slot != b.stamp_slot().slot
        freed = a.stamp_slot()
        a.close()
        c = PostgresStore(database_url, schema=schema)
        assert c.stamp_slot() == freed  # a closed (or crashed) writer's slot is free again
        c.close()
    finally:
        a.close()
        b.close()


def test_stores_opened_at_once_on_a_fresh_database_all_open():
    """Two nodes starting together on a fresh database create the schema once, not twice
    (concurrent CREATE ... IF NOT EXISTS of one name fail on PostgreSQL's catalog)."""
    import threading

    from atoll.testing.postgres import throwaway_database

    with throwaway_database("atoll_fresh", skip_if_unreachable=True) as url:
        for _ in range(3):
            schema = f"s_{uuid.uuid4().hex[:12]}"
            go, opened, failed = threading.Barrier(4), [], []

            def open_one(schema=schema, go=go, opened=opened, failed=failed):
                go.wait()
                try:
                    opened.append(PostgresStore(url, schema=schema))
                except Exception as e:  # noqa: BLE001 - the assertion below names it
                    failed.append(e)

            threads = [threading.Thread(target=open_one) for _ in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            for s in opened:
                s.close()
            assert not failed and len(opened) == 4


def test_the_store_reconnects_by_itself_after_an_outage():
    """PostgreSQL stopped: writes fail at once with ``Unavailable`` (nothing stored, say so);
    started again: the same store object writes and reads again, keeping its stamp slot."""
    import time

    from atoll.core.points import PointBatch, SeriesKey
    from atoll.testing.postgres import PostgresServer

    key = SeriesKey("p", "d", "v")

    def one(ts: int) -> PointBatch:
        return PointBatch.of_series(key, [ts], [float(ts)])

    with PostgresServer() as server:
        store = PostgresStore(server.url)
        try:
            slot = store.stamp_slot()
            store.append(one(1))
            server.stop()
            for ts in (2, 3, 4):
                with pytest.raises(Unavailable) as e:
                    store.append(one(ts))
                assert e.value.hint
            assert "unreachable" in e.value.message  # after the first failure: it says why
            with pytest.raises(Unavailable):
                store.latest("p")
            server.start()
            for _ in range(200):  # the next attempt comes within the backoff (at most 5 s)
                try:
                    store.append(one(5))
                    break
                except Unavailable:
                    time.sleep(0.05)
            assert store.query_raw(key, 0, 10).ts.tolist() == [1, 5]
            assert store.latest("p") == {key: (5, 5.0)}
            assert store.stamp_slot() == slot
        finally:
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


class _Paused(PostgresStore):
    """A writer that stops inside its append's transaction, after locking its series, until
    the test lets it go on (a node caught mid-commit)."""

    def __init__(self, *a, **kw):
        import threading

        super().__init__(*a, **kw)
        self.inside, self.go = threading.Event(), threading.Event()

    def _write(self, *a, **kw):
        self.inside.set()
        assert self.go.wait(30)
        return super()._write(*a, **kw)


def _batch(key, ts_s):
    import numpy as np

    from atoll.core.points import PointBatch

    ts = np.array(ts_s, np.int64) * 1_000_000
    return PointBatch((key,), np.zeros(len(ts), np.int32), ts, ts / 1e6)


def test_two_writers_adding_points_to_one_series_do_not_wait_for_each_other(database_url):
    """Two nodes taking one device's messages append to the same series. A writer that only
    adds points (new or late ones) takes the series' locks shared, so it does not wait for the
    other's commit; their rollups and latest values combine (before: each append took the
    series' locks exclusively, and the second waited for the first to commit)."""
    import threading

    from atoll.core.points import SeriesKey

    schema = f"s_{uuid.uuid4().hex[:12]}"
    a = _Paused(database_url, schema=schema)
    b = PostgresStore(database_url, schema=schema)
    key = SeriesKey("plant", "pump", "a")
    try:
        a.go.set()
        a.append(_batch(key, [100, 140]))
        a.go.clear()
        first = threading.Thread(target=a.append, args=(_batch(key, [110, 130]),))  # late too
        first.start()
        assert a.inside.wait(10)  # a holds its locks, its transaction open
        done = threading.Event()
        errors = []

        def second():
            try:
                b.append(_batch(key, [120, 105]))  # late: filling gaps
                done.set()
            except BaseException as e:  # noqa: BLE001 - reported by the test
                errors.append(e)

        t = threading.Thread(target=second)
        t.start()
        waited = not done.wait(5)
        a.go.set()
        first.join(30)
        t.join(30)
        assert not errors, errors
        assert not waited, "the second writer waited for the first one's commit"
        raw = b.query_raw(key, 0, 2**62)
        assert raw.ts.tolist() == [t * 1_000_000 for t in (100, 105, 110, 120, 130, 140)]
        hour = b.query_buckets(key, 0, 2**62, 3600 * 1_000_000)
        assert hour.columns["count"].tolist() == [6]
        assert hour.columns["avg"].tolist() == [705.0 / 6]
        assert b.latest("plant")[key] == (140_000_000, 140.0)
    finally:
        a.go.set()
        a.close()
        b.close()


def test_a_point_two_writers_add_at_once_is_stored_once(database_url):
    """Shared locks let both writers in; the unique key lets one point in: the other append
    fails on it and is done again under exclusive locks, where it finds the point stored."""
    import threading

    from atoll.core.points import SeriesKey

    schema = f"s_{uuid.uuid4().hex[:12]}"
    a = _Paused(database_url, schema=schema)
    b = PostgresStore(database_url, schema=schema)
    key = SeriesKey("plant", "pump", "a")
    try:
        a.go.set()
        a.append(_batch(key, [100]))
        a.go.clear()
        first = threading.Thread(target=a.append, args=(_batch(key, [110]),))
        first.start()
        assert a.inside.wait(10)
        second = threading.Thread(target=b.append, args=(_batch(key, [110, 120]),))
        second.start()
        second.join(2)  # b stored its points first, 110 included
        a.go.set()
        first.join(30)
        second.join(30)
        raw = b.query_raw(key, 0, 2**62)
        assert raw.ts.tolist() == [t * 1_000_000 for t in (100, 110, 120)]
        hour = b.query_buckets(key, 0, 2**62, 3600 * 1_000_000)
        assert hour.columns["count"].tolist() == [3]
        assert a.exclusive_appends + b.exclusive_appends == 1
    finally:
        a.go.set()
        a.close()
        b.close()


def test_an_older_schema_gets_the_unique_points_key_on_open(database_url):
    """Schemas made before kept a plain index on (sid, ts); opening one makes it unique. One
    that holds a point twice keeps the plain index, and its writers lock exclusively."""
    import psycopg

    from atoll.core.points import SeriesKey

    schema = f"s_{uuid.uuid4().hex[:12]}"
    key = SeriesKey("plant", "pump", "a")
    store = PostgresStore(database_url, schema=schema)
    store.append(_batch(key, [100, 110]))
    store.close()

    def indexes():
        with psycopg.connect(database_url, autocommit=True) as c:
            return dict(
                c.execute(
                    "SELECT indexname, indexdef FROM pg_indexes"
                    " WHERE schemaname = %s AND tablename = 'points'",
                    [schema],
                ).fetchall()
            )

    def old_style(duplicate: bool):
        with psycopg.connect(database_url, autocommit=True) as c:
            c.execute(f"DROP INDEX {schema}.points_key")
            c.execute(f"CREATE INDEX points_sid_ts ON {schema}.points (sid, ts)")
            if duplicate:
                c.execute(f"INSERT INTO {schema}.points SELECT * FROM {schema}.points LIMIT 1")

    old_style(duplicate=False)
    store = PostgresStore(database_url, schema=schema)
    assert store._unique
    assert list(indexes()) == ["points_key"] and "UNIQUE" in indexes()["points_key"]
    store.close()
    old_style(duplicate=True)
    store = PostgresStore(database_url, schema=schema)
    try:
        assert not store._unique
        assert list(indexes()) == ["points_sid_ts"]
        store.append(_batch(key, [120]))
        assert store.query_raw(key, 0, 2**62).ts.tolist()[-1] == 120_000_000
    finally:
        store.close()
