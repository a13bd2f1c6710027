"""External mode: disable, revoke, rotate and delete over the REST API make Mosquitto close the
device's connection (it reloads the password file Atoll rewrites) before, or within moments
of, the call answering."""

import asyncio
import time

import pytest

from tests.ingest.test_embedded_broker_revocation import CHANGES, Publisher, call
from tests.ingest.test_external import atoll, broker, login  # noqa: F401 - fixtures


@pytest.mark.parametrize("change", list(CHANGES))
async def test_registry_change_makes_mosquitto_close_the_connection(atoll, broker, change):  # noqa: F811
    _, creds = atoll.registry.register_device("lab", device_id="s1", device_type="climate")
    await asyncio.to_thread(lambda: login(broker.port, "s1", creds.secret).disconnect())
    pub = await asyncio.to_thread(Publisher, broker.port, creds.secret)
    try:
        while len(pub.acked) < 50:
            await asyncio.sleep(0.01)
        r = await call(atoll, *CHANGES[change])
        returned = time.monotonic()
        assert r.status_code in (200, 204), r.text
        for _ in range(100):
            if pub.disconnected_at is not None:
                break
            await asyncio.sleep(0.02)
        assert pub.disconnected_at is not None, "still connected 2 s after the API call returned"
        assert pub.disconnected_at - returned < 1.0
    finally:
        await asyncio.to_thread(pub.stop)
