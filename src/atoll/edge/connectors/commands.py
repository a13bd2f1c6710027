"""What every connector's ``command`` checks first, with the same refusals: the device is one
of this connector's, and it has the command.

>>> device_of({"press-1": "dev"}, "press-1", "Modbus connector 'line'")
'dev'
>>> device_of({"press-1": "dev"}, "pump", "Modbus connector 'line'")
Traceback (most recent call last):
...
atoll.edge.port.CommandFailed: no device 'pump' on Modbus connector 'line' (it has ['press-1'])
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import TypeVar

from atoll.edge.port import CommandFailed

D = TypeVar("D")


def device_of(devices: Mapping[str, D], device: str, connector: str) -> D:
    """``devices[device]``, or ``CommandFailed`` naming ``connector`` and what it has."""
    dev = devices.get(device)
    if dev is None:
        raise CommandFailed(f"no device {device!r} on {connector} (it has {sorted(devices)})")
    return dev


def check_command(device: str, name: str, known: Collection[str]) -> None:
    """``CommandFailed`` unless ``name`` is one of the device's ``known`` commands."""
    if name not in known:
        raise CommandFailed(f"device {device!r} has no command {name!r} (it has {sorted(known)})")
