"""The ``CommandSender`` the runtime gives the rules service: a command channel's command is
recorded in the registry, so it is tracked (pending → delivered → acked) like one sent through
the API, and handed to the MQTT side when one is attached (else devices fetch it over HTTP)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from atoll.core.errors import AtollError, NotFound
from atoll.rules.channels import DeliveryFailed

log = logging.getLogger(__name__)


class RegistryCommands:
    def __init__(self, registry: Any, transport: Any = None, *, ttl_s: float = 300.0) -> None:
        """``transport`` is an ``atoll.api.context.CommandSender`` (e.g. ``TopicCommandSender``)."""
        self.registry, self.transport, self.ttl_s = registry, transport, ttl_s

    async def send_command(self, project: str, device: str, name: str, args: dict[str, Any]) -> str:
        try:
            dev = await asyncio.to_thread(self.registry.get_device, device)
            if dev.project != project:
                raise NotFound(f"device {device!r} is not in project {project!r}")
            cmd = await asyncio.to_thread(
                self.registry.create_command, device, name, args, ttl_s=self.ttl_s
            )
        except AtollError as exc:
            raise DeliveryFailed(f"command {name!r} to {device}: {exc.message}") from None
        if self.transport is not None:
            try:
                await self.transport.send_command(cmd)
                await asyncio.to_thread(self.registry.mark_command_delivered, device, cmd.id)
            except AtollError:
                pass  # acked already, or marked by someone else: it reached the device
            except Exception:
                # Still pending in the registry: the device can fetch it over HTTP.
                log.exception("could not publish command %s to %s", cmd.id, device)
        return cmd.id
