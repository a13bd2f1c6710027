"""The SDK against a real uvicorn server on an ephemeral port (``tests.api.serving.ApiServer``:
SQLite registry, memory store, the real ingest pipeline and rules service)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import pytest

import atoll
from tests.api.serving import ApiServer

T = TypeVar("T")


@pytest.fixture
def server(tmp_path):
    with ApiServer(tmp_path) as s:
        yield s


@pytest.fixture
def client(server):
    """The bootstrap key's client: a platform admin of the ``default`` tenant."""
    with atoll.Client(server.url, server.boot.api_key) as c:
        yield c


@pytest.fixture
def plant(client):
    """Project ``plant`` with a ``boiler`` type and device ``b1``; yields b1's secret."""
    client.create_project("Plant", id="plant")
    client.create_device_type("plant", "boiler", [{"name": "temperature", "unit": "°C"}])
    return client.register_device("plant", id="b1", device_type="boiler").credentials.secret


def wait_for(get: Callable[[], T], timeout: float = 20.0) -> T:
    """``get()`` once it is truthy; the last value after ``timeout`` seconds (a loaded CI box)."""
    deadline = time.monotonic() + timeout
    while not (value := get()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return value
