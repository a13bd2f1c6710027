"""Adapter from the ``Registry`` to ingest's ``DeviceDirectory`` port (``atoll.ingest.devices``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from atoll.core.errors import AtollError, Forbidden, Unauthenticated
from atoll.registry.models import Command, DeviceIdentity, Twin
from atoll.registry.registry import Registry


class RegistryDirectory:
    """What ingest asks of the registry, with ingest's
    error conventions (raise, don't return None)."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def authenticate_device(self, device_id: str, secret: str) -> DeviceIdentity:
        identity = self.registry.authenticate_device(device_id, secret)
        if identity is not None:
            return identity
        raise self._refusal(device_id, secret)

    def recheck_devices(self, credentials: list[tuple[str, str]]) -> dict[str, AtollError]:
        """Of many ``(device_id, secret)``, those that ``authenticate_device`` would now refuse,
        with its error; in bulk (``Registry.authenticate_devices``)."""
        passed = self.registry.authenticate_devices(credentials)
        return {
            device_id: self._refusal(device_id, secret)
            for device_id, secret in credentials
            if passed.get(device_id) is None
        }

    def _refusal(self, device_id: str, secret: str) -> AtollError:
        if self.registry.device_disabled(device_id, secret):
            return Forbidden(
                f"device {device_id!r} is disabled", hint="an operator can enable it again"
            )
        return Unauthenticated(
            "unknown device or wrong secret",
            hint="check the device id and secret; rotated or revoked secrets stop working",
        )

    def record_rejections(self, rows: Iterable[tuple[str, str, str, str, int, int]]) -> None:
        self.registry.record_rejections(rows)

    def touch_devices(self, last_seen: Mapping[str, int]) -> None:
        self.registry.touch_devices(last_seen)

    def record_usage(self, stored: Mapping[str, tuple[int, int]]) -> None:
        self.registry.record_usage(stored)

    def patch_reported(self, device_id: str, patch: Mapping[str, Any]) -> Twin:
        return self.registry.patch_reported(device_id, patch)

    def command_ack(self, device_id: str, command_id: str, status: str, result: Any) -> Command:
        return self.registry.ack_command(device_id, command_id, status == "ok", result)

    def child_id(self, tenant: str, child: str) -> str:
        return self.registry.child_id(tenant, child)

    def known_identities(self, device_ids: Iterable[str]) -> dict[str, DeviceIdentity | None]:
        return self.registry.known_identities(device_ids)

    def device_identities(self, device_ids: Iterable[str]) -> dict[str, DeviceIdentity | None]:
        return self.registry.device_identities(device_ids)

    def adopt_child(
        self, gateway: str, child: str, device_type: str | None
    ) -> tuple[DeviceIdentity, bool]:
        return self.registry.adopt_child(gateway, child, device_type)
