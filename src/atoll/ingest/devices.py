"""What ingest needs from the device registry: a small port, so ingest does not depend on how
the registry stores things. ``atoll.registry`` provides the real adapter.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol, runtime_checkable


class Identity(Protocol):
    """An authenticated device (``atoll.registry.models.DeviceIdentity`` fits).

    Read-only members, so a frozen dataclass fits (and ``metrics`` may be any mapping)."""

    @property
    def device(self) -> str: ...
    @property
    def project(self) -> str: ...
    @property
    def tenant(self) -> str: ...
    # Declared telemetry by name (objects with ``type``, ``min``, ``max``); ``None`` = any metric.
    @property
    def metrics(self) -> Mapping[str, Any] | None: ...


@runtime_checkable
class DeviceDirectory(Protocol):
    def authenticate_device(self, device_id: str, secret: str) -> Identity:
        """Raise ``Unauthenticated`` (unknown device, wrong or revoked secret) or ``Forbidden``
        (disabled device)."""

    def record_rejections(self, rows: Iterable[tuple[str, str, str, str, int, int]]) -> None:
        """Add ``(device, transport, reason, last_message, last_at_us, count)`` to the counters."""

    def touch_devices(self, last_seen: Mapping[str, int]) -> None:
        """Remember when devices last sent data (µs)."""

    def record_usage(self, stored: Mapping[str, tuple[int, int]]) -> None:
        """Meter telemetry stored: ``{project: (messages, points)}`` since the last call."""

    def patch_reported(self, device_id: str, patch: Mapping[str, Any]) -> Any:
        """Merge a twin-reported document (RFC 7386 merge patch)."""

    def command_ack(self, device_id: str, command_id: str, status: str, result: Any) -> Any:
        """A device answered a command (``status`` ok|error)."""
