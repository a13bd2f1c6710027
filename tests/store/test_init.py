import pytest

from atoll.core.errors import InvalidInput
from atoll.core.points import PointBatch, SeriesKey
from atoll.store import SeriesStore, open_store
from atoll.store.duckdb import DuckDBStore
from atoll.store.memory import MemoryStore

K = SeriesKey("p", "d", "m")


def test_memory_url():
    store = open_store("memory://")
    assert isinstance(store, MemoryStore) and isinstance(store, SeriesStore)


def test_duckdb_url_creates_the_file_and_its_directory(tmp_path):
    path = tmp_path / "deep" / "series.duckdb"
    store = open_store(f"duckdb://{path}?threads=1")
    assert isinstance(store, DuckDBStore) and isinstance(store, SeriesStore)
    store.append(PointBatch.of_series(K, [1, 2], [1.0, 2.0]))
    store.close()
    assert path.exists()
    again = open_store(f"duckdb://{path}")
    assert again.query_raw(K, 0, 10).value.tolist() == [1.0, 2.0]
    again.close()


def test_duckdb_in_memory_url():
    store = open_store("duckdb://:memory:")
    store.append(PointBatch.of_series(K, [1], [1.0]))
    assert store.latest("p") == {K: (1, 1.0)}
    store.close()


@pytest.mark.parametrize("url", ["", "series.duckdb", "sqlite:///x.db", "duckdb://"])
def test_bad_urls_say_what_would_work(url):
    with pytest.raises(InvalidInput) as e:
        open_store(url)
    assert "memory://" in e.value.hint
