"""What a platform service is, and what the runtime gives it.

A service module (listed in ``atoll.platform.SERVICE_MODULES``) exposes
``create_service(ctx: ServiceContext) -> Service | None``. The runtime calls it once the store,
bus and registry are up; the service then gets ``start()`` before devices can connect and
``stop()`` in reverse order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from atoll.bus.port import MessageBus
    from atoll.config import Settings
    from atoll.registry import Registry
    from atoll.registry.commands import CommandSender
    from atoll.store.port import SeriesStore

__all__ = ["PlatformParts", "Service", "ServiceContext", "ServiceModule"]


@runtime_checkable
class Service(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class ServiceContext(Protocol):
    """What a service may use of the platform: read-only, and all of it up and running."""

    @property
    def settings(self) -> Settings: ...

    @property
    def registry(self) -> Registry: ...

    @property
    def store(self) -> SeriesStore: ...

    @property
    def bus(self) -> MessageBus: ...

    @property
    def commands(self) -> CommandSender | None:
        """Hands commands to the devices' MQTT side; ``None`` with MQTT off (devices poll)."""
        ...


class ServiceModule(Protocol):
    """A module listed in ``SERVICE_MODULES``; ``__name__`` is what ``Settings.services`` picks."""

    __name__: str

    def create_service(self, ctx: ServiceContext, /) -> Service | None: ...


@dataclass(frozen=True)
class PlatformParts:
    """The plain ``ServiceContext``: what ``atoll.platform.Platform`` hands each service module."""

    settings: Settings
    registry: Registry
    store: SeriesStore
    bus: MessageBus
    commands: CommandSender | None = None
