"""Throw-away PostgreSQL databases for tests, on the machine's server.

The server is ``127.0.0.1:5432``, user ``postgres`` with trust authentication, or the libpq
connection string in ``ATOLL_TEST_PG``. Each database gets a unique name and is dropped
afterwards, so tests running in parallel (or a crashed run) never share state::

    with throwaway_database("atoll_store") as url:   # postgresql://postgres@127.0.0.1:5432/atoll_store_…
        PostgresStore(url)

    pg_url = database_fixture("atoll_registry", scope="session")   # in a conftest.py

The fixture skips its tests, with the reason, only when no server answers; any other failure
(a refused ``CREATE DATABASE``, say) is an error.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Literal

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from atoll.core.errors import Unavailable

__all__ = ["DEFAULT_SERVER", "database_fixture", "server", "throwaway_database"]

DEFAULT_SERVER = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"


def server() -> str:
    """The libpq connection string of the test server (``ATOLL_TEST_PG`` or the default)."""
    return os.environ.get("ATOLL_TEST_PG", DEFAULT_SERVER)


@contextmanager
def throwaway_database(
    prefix: str = "atoll_test", *, conninfo: str | None = None, skip_if_unreachable: bool = False
) -> Iterator[str]:
    """Create ``<prefix>_<random>``, yield its ``postgresql://`` URL, drop it on exit.

    No server: ``Unavailable`` (or, with ``skip_if_unreachable``, the pytest test is skipped).
    """
    conninfo = conninfo or server()
    params = conninfo_to_dict(conninfo)
    where = f"{params.get('host', '127.0.0.1')}:{params.get('port', 5432)}"
    user = str(params.get("user", "postgres")) + (
        f":{params['password']}" if params.get("password") else ""
    )
    try:
        admin = psycopg.connect(
            make_conninfo(conninfo, dbname="postgres"), autocommit=True, connect_timeout=3
        )
    except psycopg.OperationalError as exc:
        reason = f"no PostgreSQL server reachable at {where} ({exc})"
        if skip_if_unreachable:
            import pytest

            pytest.skip(f"{reason}; start one, or set ATOLL_TEST_PG to a libpq connection string")
        raise Unavailable(reason, hint="start PostgreSQL or set ATOLL_TEST_PG") from exc
    name = f"{prefix}_{secrets.token_hex(6)}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"postgresql://{user}@{where}/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def database_fixture(
    prefix: str, *, scope: Literal["session", "package", "module", "class", "function"] = "function"
) -> Callable[..., Any]:
    """A pytest fixture yielding the URL of a throw-away database (see the module docstring)."""
    import pytest

    @pytest.fixture(scope=scope)
    def postgres_database() -> Iterator[str]:
        with throwaway_database(prefix, skip_if_unreachable=True) as url:
            yield url

    return postgres_database
