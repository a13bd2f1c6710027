"""The edge agent's ports: what a connector gives the agent and what the agent gives it.

A connector (OPC UA, Modbus, local MQTT …) reads one or more machines and hands what it read to
a ``ReadingSink``; ``put`` returns only once the readings are on local disk, so a connector that
acknowledges its own source (a local MQTT PUBACK, say) does so after ``put`` returned. The agent
routes platform commands to the connector that owns the child device.

Readings are Atoll's own type, converted at the connector's edge: timestamps are integer
microseconds since the Unix epoch (UTC), values are floats or bools keyed by metric name.

>>> r = EdgeReading("press-1", 1_795_428_000_000_000, {"temperature": 21.5, "running": True})
>>> r.device, sorted(r.values)
('press-1', ['running', 'temperature'])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

Value = float | bool


@dataclass(frozen=True, slots=True)
class EdgeReading:
    """One reading of one child device: a time and one or more metric values."""

    device: str  # the child device's id as the gateway knows it (no tenant prefix)
    ts_us: int  # µs since the Unix epoch, UTC
    values: Mapping[str, Value]


@dataclass(frozen=True, slots=True)
class ChildDevice:
    """A device behind the gateway, as a connector declares it (registered on the platform
    under the gateway before its first reading is forwarded)."""

    id: str
    device_type: str | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)


class ReadingSink(Protocol):
    """Where connectors put what they read (the agent's durable buffer)."""

    async def put(self, readings: Sequence[EdgeReading]) -> None:
        """Return once every reading is durably buffered (or counted as dropped by the
        buffer's policy when it is full). Raises ``BufferStopped`` when the policy is to stop
        reading and the buffer is full: the connector then waits and retries, it never drops."""
        ...


class BufferStopped(Exception):
    """The buffer is full and its policy is to stop reading until the forwarder drains it."""


class CommandFailed(Exception):
    """A routed command could not be carried out (the reason goes back in the command ack)."""


class Connector(Protocol):
    """One configured connection to machines (one OPC UA server, one Modbus slave set …)."""

    @property
    def name(self) -> str:
        """The connector's name in the agent's configuration (unique per agent)."""
        ...

    def devices(self) -> Sequence[ChildDevice]:
        """The child devices this connector reads (known from its configuration)."""
        ...

    async def run(self, sink: ReadingSink) -> None:
        """Read until cancelled. Connection loss is handled inside (reconnect, resubscribe,
        counted in ``status``); only a configuration error ends it, with ``ValueError``."""
        ...

    async def command(self, device: str, name: str, args: Mapping[str, Any]) -> Any:
        """Carry out a platform command on one of this connector's devices (an OPC UA method
        call, a Modbus register write …) and return its result; ``CommandFailed`` otherwise."""
        ...

    def status(self) -> Mapping[str, Any]:
        """Counters and state for the gateway's reported twin (connected, reads, errors …),
        JSON-serialisable."""
        ...
