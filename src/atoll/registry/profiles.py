"""Device type and labels, looked up per project in bulk.

The rules service (attaching a device to its type's rules) and the detection service (choosing
a detector for a new series) look a device up when its telemetry first arrives. A fleet that
starts sending at once then cost one registry query per device, on the event loop for rules
(10,000 simulated devices: ~20 % of the loop's time while they started, see docs/BENCHMARKS.md).
``DeviceProfiles`` reads a project's whole table in one query instead, and again when it is
older than ``max_age`` seconds (so a device's new type or labels apply to what is looked up
next). A device missing from a fresh table (registered since it was read) is looked up alone;
after ``reload_after`` such misses the table is read again.

A registry without ``device_profiles`` (a test's stand-in) is asked device by device.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from atoll.core.errors import NotFound

#: ``(device type, labels)``, or ``None`` for a device that is not of the project (or unknown).
Profile = tuple[str | None, dict[str, str]] | None


class _Table:
    __slots__ = ("devices", "loaded", "misses")

    def __init__(self, devices: dict[str, Profile], loaded: float) -> None:
        self.devices = devices
        self.loaded = loaded
        self.misses = 0


class DeviceProfiles:
    """Not thread-safe: use one per thread (each service asks from one thread)."""

    def __init__(
        self,
        registry: Any,
        *,
        max_age: float = 60.0,
        reload_after: int = 64,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = registry
        self.max_age = max_age
        self.reload_after = reload_after
        self.clock = clock
        self._tables: dict[str, _Table] = {}
        #: Registry queries made: whole tables read, devices looked up alone.
        self.loads = 0
        self.lookups = 0

    def get(self, project: str, device: str) -> Profile:
        """The device's ``(type, labels)`` if it belongs to ``project``, else ``None``."""
        now = self.clock()
        table = self._tables.get(project)
        bulk = getattr(self.registry, "device_profiles", None)
        if bulk is not None and (
            table is None or now - table.loaded >= self.max_age or table.misses >= self.reload_after
        ):
            self.loads += 1
            table = self._tables[project] = _Table(dict(bulk(project)), now)
        elif table is None or now - table.loaded >= self.max_age:
            table = self._tables[project] = _Table({}, now)
        if device in table.devices:
            return table.devices[device]
        table.misses += 1
        profile = self._one(project, device)
        table.devices[device] = profile
        return profile

    def forget(self, project: str) -> None:
        """Read the project's table again when next asked (its types or labels changed)."""
        self._tables.pop(project, None)

    def _one(self, project: str, device: str) -> Profile:
        self.lookups += 1
        try:
            d = self.registry.get_device(device)
        except NotFound:
            return None
        if getattr(d, "project", project) != project:  # a stand-in may not say
            return None
        return d.device_type, dict(d.labels or {})
