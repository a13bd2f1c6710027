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
