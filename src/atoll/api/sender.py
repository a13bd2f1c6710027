"""A ``CommandSender`` over anything that can publish MQTT messages (embedded broker, paho client).

>>> import asyncio
>>> sent = []
>>> async def publish(topic, payload, *, qos=1, retain=False): sent.append((topic, payload, retain))
>>> asyncio.run(TopicCommandSender(publish).publish_desired("d1", {"led": 1}, 3))
>>> sent
[('atoll/v1/devices/d1/twin/desired', b'{"led":1,"$version":3}', True)]
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, Protocol

import orjson

from atoll.core import topics
from atoll.registry import Command


class Publish(Protocol):
    def __call__(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> Awaitable[None]: ...


class TopicCommandSender:
    """Commands go to ``.../commands/{id}`` as ``{"name", "args"}`` (QoS 1); the desired twin goes
    to ``.../twin/desired`` retained, with its version in ``"$version"`` so devices can skip stale copies."""

    def __init__(self, publish: Publish) -> None:
        self._publish = publish

    async def send_command(self, command: Command) -> None:
        payload = orjson.dumps({"id": command.id, "name": command.name, "args": command.args})
        await self._publish(topics.command(command.device, command.id), payload, qos=1, retain=False)

    async def publish_desired(self, device: str, desired: dict[str, Any], version: int) -> None:
        payload = orjson.dumps({**desired, "$version": version})
        await self._publish(topics.twin_desired(device), payload, qos=1, retain=True)
