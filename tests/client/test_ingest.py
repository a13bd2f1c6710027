"""``DeviceClient``: the device side of the API over HTTP."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

import atoll


def test_device_side(server, client, plant):
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    with atoll.DeviceClient(server.url, "b1", plant) as dev:
        assert dev.send({"temperature": 21.5}, ts=t0) == 1
        assert (
            dev.send_batch(
                [
                    (t0.timestamp() * 1000 + 1000, {"temperature": 22}),
                    ("2026-01-01T00:00:02Z", {"temperature": 23}),
                ]
            )
            == 2
        )
        with pytest.raises(atoll.InvalidInput, match="humidity"):
            dev.send({"humidity": 3})
        assert dev.report({"fw": "1.0"}).reported == {"fw": "1.0"}
        client.update_desired("b1", {"interval": 5})
        assert dev.desired() == ({"interval": 5}, 1)
        cmd = client.send_command("b1", "reboot")
        (polled,) = dev.pending_commands()
        assert polled.id == cmd.id and dev.ack(polled.id, result="ok").status == "acked"
    assert client.raw("b1", "temperature", start=t0, end="2026-01-01T01:00:00Z").value == [
        21.5,
        22,
        23,
    ]
    assert client.command("b1", cmd.id).result == "ok"
    with (
        atoll.DeviceClient(server.url, "b1", "wrong") as impostor,
        pytest.raises(atoll.Unauthenticated),
    ):
        impostor.send({"temperature": 1})
