import pytest

from atoll.store.memory import MemoryStore
from atoll.testing.store import STORE_CHECKS, check_store


@pytest.mark.parametrize("check", STORE_CHECKS, ids=lambda c: c.__name__)
def test_conformance(check):
    check(MemoryStore, None)


def test_check_store_runs_every_check():
    check_store(MemoryStore)


def test_check_store_catches_a_broken_store():
    class DropsLastPoint(MemoryStore):
        def query_raw(self, key, start, end, limit=None):
            got = super().query_raw(key, start, end, limit)
            return type(got)(got.ts[:-1], got.value[:-1]) if len(got.ts) else got

    with pytest.raises(AssertionError, match=r"^check_\w+: "):
        check_store(DropsLastPoint)


def test_raw_counts_of_many_series():
    from atoll.testing.store import check_raw_counts

    check_raw_counts(MemoryStore)
