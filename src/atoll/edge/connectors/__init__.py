"""Connector types the agent can run, composed explicitly: type name → factory.

A factory takes one entry of the configuration's ``connectors`` list as a mapping (``type``,
``name`` and the type's own settings) and returns a ``Connector`` (``atoll.edge.port``); it
raises ``ValueError`` (pydantic's ``ValidationError`` is one) saying what is wrong, so
``atoll edge check`` and a desired twin with a bad entry are refused with the reason. Each type
is a folder here with its code and a ``manifest.json`` (``manifest.py`` reads them; the tests
check every entry has one). A factory imports its protocol library (the ``edge`` extra) only
when called, so the agent starts without it when no such connector is configured.

>>> sorted(CONNECTORS)
['modbus', 'mqtt', 'opcua', 'sim']
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from atoll.edge.connectors import modbus, mqtt, opcua, sim
from atoll.edge.port import Connector

ConnectorFactory = Callable[[Mapping[str, Any]], Connector]

CONNECTORS: dict[str, ConnectorFactory] = {
    "modbus": modbus.build,
    "mqtt": mqtt.build,
    "opcua": opcua.build,
    "sim": sim.build,
}
