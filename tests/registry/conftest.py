import os
import secrets

import psycopg
import pytest
from argon2 import PasswordHasher

from atoll.registry import Registry

# Same algorithm, test-sized cost: the production default takes ~1 s per hash on a busy 2-core box.
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)

PG = os.environ.get("ATOLL_TEST_PG", "host=127.0.0.1 port=5432 user=postgres dbname=postgres")


@pytest.fixture(scope="session")
def pg_url():
    """A uniquely named PostgreSQL database for this test session, dropped afterwards."""
    name = f"atoll_registry_{secrets.token_hex(4)}"
    try:
        admin = psycopg.connect(PG, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable ({exc}); set ATOLL_TEST_PG")
    admin.execute(f'CREATE DATABASE "{name}"')
    params = psycopg.conninfo.conninfo_to_dict(PG)
    yield (f"postgresql://{params.get('user', 'postgres')}@{params.get('host', '127.0.0.1')}:"
           f"{params.get('port', 5432)}/{name}")
    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


@pytest.fixture
def registry(tmp_path):
    reg = Registry.open(tmp_path, password_hasher=FAST_HASHER)
    yield reg
    reg.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def any_registry(request, tmp_path):
    """The same registry code on both backends."""
    if request.param == "sqlite":
        reg = Registry.open(tmp_path, password_hasher=FAST_HASHER)
    else:
        from sqlalchemy import create_engine

        from atoll.registry.tables import metadata

        url = request.getfixturevalue("pg_url")
        engine = create_engine(url)
        metadata.drop_all(engine)
        engine.dispose()
        reg = Registry(url, password_hasher=FAST_HASHER)
    yield reg
    reg.close()
