"""What the HTTP API needs from the rest of the platform: small ports, wired by the runtime.

``atoll.ingest.pipeline.IngestPipeline`` satisfies ``IngestSubmitter``; the MQTT side of ingest
provides a ``CommandSender`` and ``DeviceSessions``. Any may be ``None`` (e.g. MQTT off): the API
then degrades (commands stay ``pending`` for HTTP polling, device-facing ingest answers 503).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from atoll.registry import Command, DeviceIdentity, Registry
from atoll.store.port import SeriesStore


@runtime_checkable
class IngestSubmitter(Protocol):
    async def submit_telemetry(
        self, identity: DeviceIdentity, body: bytes, transport: str = "mqtt"
    ) -> int:
        """Validate and durably store; return the number
        of points. Raises ``InvalidInput`` subclasses."""

    def admit(self, identity: DeviceIdentity, transport: str) -> None:
        """Raise ``RateLimited`` while the device or its tenant is over its rate limit."""

    async def twin_reported(
        self, identity: DeviceIdentity, body: bytes, transport: str = "mqtt"
    ) -> Any:
        """Merge a reported-twin JSON document sent by the device itself."""

    async def command_ack(
        self, identity: DeviceIdentity, command_id: str, body: bytes, transport: str = "mqtt"
    ) -> Any:
        """A device's ``{"status": "ok"|"error", "result": ...}`` for one of its commands."""


@runtime_checkable
class CommandSender(Protocol):
    async def send_command(self, command: Command) -> None:
        """Publish ``{"name", "args"}`` on the device's
        command topic. Raise if it could not be handed over."""

    async def publish_desired(self, device: str, desired: dict[str, Any], version: int) -> None:
        """Publish the whole desired document (retained) on the device's ``twin/desired`` topic."""


@runtime_checkable
class DeviceSessions(Protocol):
    async def disconnect(self, device_id: str, reason: str, *, forget: bool = False) -> int:
        """Close the device's live MQTT connections now (it was disabled, revoked, rotated or
        deleted); return how many. When it returns, nothing more of the device is
        acknowledged over those connections. ``forget``: the device was deleted, drop what
        the broker keeps for it (persistent session) too."""


class ApiContext(Protocol):
    """Anything with these attributes; ``atoll.api.AppContext`` is the plain dataclass form."""

    registry: Registry
    store: SeriesStore
    ingest: IngestSubmitter | None
    commands: CommandSender | None
    sessions: DeviceSessions | None
