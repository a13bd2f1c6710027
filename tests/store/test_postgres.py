import uuid

import psycopg
import pytest

from atoll.core.errors import Unavailable
from atoll.store import open_store
from atoll.store.postgres import PostgresStore
from atoll.testing.store import STORE_CHECKS

SERVER = "postgresql://postgres@127.0.0.1:5432"


@pytest.fixture(scope="session")
def database_url():
    """A database of its own for this test session, dropped afterwards."""
    try:
        admin = psycopg.connect(f"{SERVER}/postgres", autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as e:
        pytest.skip(f"PostgreSQL not reachable at {SERVER}: {e}")
    name = f"atoll_store_test_{uuid.uuid4().hex[:12]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{SERVER}/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


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
