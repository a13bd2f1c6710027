import pytest
from argon2 import PasswordHasher

from atoll.registry import Registry
from atoll.testing.postgres import database_fixture

# Same algorithm, test-sized cost: the production default takes ~1 s per hash on a busy 2-core box.
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)

pg_url = database_fixture("atoll_registry", scope="session")


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
