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
    # ``"device"`` or ``"gateway"`` (``atoll.core.acl.KINDS``), and the gateway a child
    # device belongs to (``None``: it has none).
    @property
    def kind(self) -> str: ...
    @property
    def parent(self) -> str | None: ...


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

    # -- gateways (docs/DEVICES.md, "Gateways") ------------------------------------------------

    def child_id(self, tenant: str, child: str) -> str:
        """The stored id of the device a gateway of ``tenant`` calls ``child`` (its id as
        chosen); raise ``InvalidInput`` if malformed or another tenant's."""

    def known_identities(self, device_ids: Iterable[str]) -> Mapping[str, Identity | None]:
        """The identities of those devices that are cached (``None``: unknown or disabled);
        no I/O, for the event loop."""

    def device_identities(self, device_ids: Iterable[str]) -> Mapping[str, Identity | None]:
        """The identity of each device (``None``: unknown or disabled), cached; may read the
        registry (call it in a worker thread)."""

    def adopt_child(
        self, gateway: str, child: str, device_type: str | None
    ) -> tuple[Identity, bool]:
        """Register ``child`` as a child of ``gateway`` unless it already is one; returns its
        identity and whether it was created. Raise ``InvalidInput``, ``NotFound``,
        ``Conflict`` or ``QuotaExceeded`` when the gateway may not."""
