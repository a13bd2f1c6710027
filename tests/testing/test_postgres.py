"""Throw-away databases: created on the local server, usable, dropped afterwards."""

import psycopg
import pytest

from atoll.core.errors import Unavailable
from atoll.testing.postgres import database_fixture, server, throwaway_database

pg_url = database_fixture("atoll_testing")


def _exists(name: str) -> bool:
    with psycopg.connect(server(), connect_timeout=3) as admin:
        return (
            admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            is not None
        )


def test_database_is_created_and_dropped(pg_url):
    name = pg_url.rsplit("/", 1)[1]
    assert name.startswith("atoll_testing_") and _exists(name)
    with throwaway_database("atoll_testing") as other:
        assert other != pg_url
        with psycopg.connect(other) as conn:
            conn.execute("CREATE TABLE t (x int)")
            conn.execute("INSERT INTO t VALUES (1)")
        other_name = other.rsplit("/", 1)[1]
        assert _exists(other_name)
    assert not _exists(other_name)


def test_dropped_even_when_the_test_fails(pg_url):
    with pytest.raises(RuntimeError), throwaway_database("atoll_testing") as url:
        name = url.rsplit("/", 1)[1]
        with psycopg.connect(url):  # an open connection does not keep it alive (WITH FORCE)
            raise RuntimeError("test failed")
    assert not _exists(name)


def test_no_server_is_unavailable_or_a_skip_with_the_reason():
    nowhere = "host=127.0.0.1 port=1 user=postgres dbname=postgres"
    with (
        pytest.raises(Unavailable, match="no PostgreSQL server reachable at 127.0.0.1:1"),
        throwaway_database(conninfo=nowhere),
    ):
        pass
    with (
        pytest.raises(pytest.skip.Exception, match="ATOLL_TEST_PG"),
        throwaway_database(conninfo=nowhere, skip_if_unreachable=True),
    ):
        pass
