"""What the rules service needs to know about devices: their type, and who is in a project.

The registry provides the real one; ``StaticDirectory`` serves tests and YAML-only setups.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class DeviceDirectory(Protocol):
    def device_type(self, project: str, device: str) -> str | None:
        """The device's type, or ``None`` when unknown."""

    def devices(self, project: str, device_type: str | None = None) -> list[str]:
        """Device ids of a project (of one type when given)."""


class StaticDirectory:
    """``{project: {device: device_type}}`` held in memory."""

    def __init__(self, types: dict[str, dict[str, str]] | None = None) -> None:
        self.types = {p: dict(d) for p, d in (types or {}).items()}

    def add(self, project: str, device: str, device_type: str) -> None:
        self.types.setdefault(project, {})[device] = device_type

    def device_type(self, project: str, device: str) -> str | None:
        return self.types.get(project, {}).get(device)

    def devices(self, project: str, device_type: str | None = None) -> list[str]:
        return sorted(d for d, t in self.types.get(project, {}).items() if device_type in (None, t))


class RegistryDevices:
    """``DeviceDirectory`` over the registry (``atoll.registry.Registry``)."""

    def __init__(self, registry) -> None:
        from atoll.registry.profiles import DeviceProfiles

        self.registry = registry
        # A fleet that starts sending at once: one query per project, not one per device.
        self._profiles = DeviceProfiles(registry)

    def device_type(self, project: str, device: str) -> str | None:
        profile = self._profiles.get(project, device)
        return None if profile is None else profile[0]

    def devices(self, project: str, device_type: str | None = None) -> list[str]:
        from atoll.core.errors import NotFound

        out: list[str] = []
        offset = 0
        while True:
            try:
                page = self.registry.list_devices(
                    project, limit=1000, offset=offset, device_type=device_type
                )
            except NotFound:
                return out
            out += [d.id for d in page]
            if len(page) < 1000:
                return out
            offset += len(page)
