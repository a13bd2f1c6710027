"""A ``CommandSender`` over anything that can publish MQTT messages (embedded broker, paho client).

>>> import asyncio
>>> sent = []
>>> async def publish(topic, payload, *, qos=1, retain=False): sent.append((topic, payload, retain))
>>> asyncio.run(TopicCommandSender(publish).publish_desired("d1", {"led": 1}, 3))
>>> sent
[('atoll/v1/devices/d1/twin/desired', b'{"led":1,"$version":3}', True)]
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import orjson

from atoll.core import topics
from atoll.core.errors import Unavailable
from atoll.registry import Command, Registry

log = logging.getLogger(__name__)


class Publish(Protocol):
    def __call__(
        self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False
    ) -> Awaitable[None]: ...


def child_name(device: str) -> str:
    """A device's id as chosen at registration, as its gateway names it (no tenant prefix).

    >>> child_name("acme~press-1"), child_name("press-1")
    ('press-1', 'press-1')
    """
    return device.rpartition("~")[2]


class TopicCommandSender:
    """Commands go to ``.../commands/{id}`` as ``{"id", "name", "args"}`` (QoS 1), or, for a
    child device, to its gateway's ``.../gateway/commands/{child}/{id}`` with ``"device"`` too;
    the desired twin goes to ``.../twin/desired`` retained, with its version in ``"$version"``
    so devices can skip stale copies."""

    def __init__(self, publish: Publish, connected: Callable[[str], bool] | None = None) -> None:
        """``connected(device_id)``, when given, keeps commands for offline devices ``pending``
        (an offline device would miss a non-retained publish); ``redeliver`` sends them later."""
        self._publish = publish
        self._connected = connected

    async def send_command(self, command: Command) -> None:
        if self._connected is not None and not self._connected(command.device):
            raise Unavailable(
                f"device {command.device!r} is not connected; the command stays pending"
            )
        doc = {"id": command.id, "name": command.name, "args": command.args}
        if command.gateway:  # a child device: through its gateway, named as the gateway knows it
            child = child_name(command.device)
            topic = topics.gateway_command(command.gateway, child, command.id)
            doc["device"] = child
        else:
            topic = topics.command(command.device, command.id)
        await self._publish(topic, orjson.dumps(doc), qos=1, retain=False)

    async def publish_desired(self, device: str, desired: dict[str, Any], version: int) -> None:
        payload = orjson.dumps({**desired, "$version": version})
        await self._publish(topics.twin_desired(device), payload, qos=1, retain=True)


async def redeliver(sender: TopicCommandSender, registry: Registry, device: str) -> int:
    """Publish a device's still-pending commands (call when it connects); returns how many went."""
    import asyncio

    pending = await asyncio.to_thread(registry.list_commands, device, status="pending")
    sent = 0
    for cmd in reversed(pending):  # oldest first
        try:
            await sender.send_command(cmd)
            await asyncio.to_thread(registry.mark_command_delivered, device, cmd.id)
            sent += 1
        except Exception:  # the next connect tries again
            log.warning("could not redeliver command %s to %s", cmd.id, device, exc_info=True)
    return sent
