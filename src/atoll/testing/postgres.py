"""Throw-away PostgreSQL databases for tests, on the machine's server.

The server is ``127.0.0.1:5432``, user ``postgres`` with trust authentication, or the libpq
connection string in ``ATOLL_TEST_PG``. Each database gets a unique name and is dropped
afterwards, so tests running in parallel (or a crashed run) never share state::

    with throwaway_database("atoll_store") as url:   # postgresql://postgres@127.0.0.1:5432/atoll_store_…
        PostgresStore(url)

    pg_url = database_fixture("atoll_registry", scope="session")   # in a conftest.py

A test that stops and starts the server (an outage) gets one of its own instead::

    with PostgresServer() as server:    # initdb + pg_ctl on a free port, removed afterwards
        store = PostgresStore(server.url); server.stop(); ...; server.start()

The fixture skips its tests, with the reason, only when no server answers; any other failure
(a refused ``CREATE DATABASE``, say) is an error.
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Literal, Self

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from atoll.core.errors import Unavailable

__all__ = [
    "DEFAULT_SERVER",
    "PostgresServer",
    "database_fixture",
    "server",
    "throwaway_database",
]

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


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=_version)
    path = found[-1] if found else shutil.which(name)
    if path is None:
        raise Unavailable(
            f"PostgreSQL's {name} is not installed", hint="apt-get install postgresql"
        )
    return path


def _version(path: str) -> tuple[int, ...]:
    return tuple(int(x) for x in path.split("/")[4].split(".") if x.isdigit())


class PostgresServer:
    """A private PostgreSQL server, ``initdb`` in a temp directory and ``pg_ctl`` on a free
    port, trust authentication, for tests that stop and start it. As root, the server runs as
    the ``postgres`` user (PostgreSQL refuses to run as root). ``fsync`` is off: outages here
    are server stops, not power cuts."""

    def __init__(self) -> None:
        self.port = 0
        self.data_dir = ""
        self._as: list[str] = []

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *cmd: str) -> None:
        done = subprocess.run([*self._as, *cmd], capture_output=True, text=True, timeout=60)
        if done.returncode:
            raise Unavailable(f"{' '.join(cmd[:2])} failed: {done.stderr or done.stdout}")

    def __enter__(self) -> Self:
        root = tempfile.mkdtemp(prefix="atoll-pg-")
        self.data_dir = os.path.join(root, "data")
        if os.geteuid() == 0:
            shutil.chown(root, "postgres", "postgres")
            self._as = ["runuser", "-u", "postgres", "--"]
        try:
            self._run(_pg_bin("initdb"), "-D", self.data_dir, "-U", "postgres", "-A", "trust")
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                self.port = s.getsockname()[1]
            self.start()
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise
        return self

    def start(self) -> None:
        opts = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.data_dir}"
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run(
            _pg_bin("pg_ctl"),
            "-D",
            self.data_dir,
            "-o",
            opts,
            "-w",
            "-l",
            os.path.join(self.data_dir, "log"),
            "start",
        )

    def stop(self) -> None:
        """Stop the server (fast shutdown: sessions are cut, as in an outage)."""
        self._run(_pg_bin("pg_ctl"), "-D", self.data_dir, "-m", "fast", "-w", "stop")

    def __exit__(self, *exc: object) -> None:
        try:
            self.stop()
        except Unavailable:
            pass  # already stopped
        shutil.rmtree(os.path.dirname(self.data_dir), ignore_errors=True)
