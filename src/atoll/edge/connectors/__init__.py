"""The edge agent's connectors, composed explicitly: name → factory ``build(config)``.

Each is a folder here with its code and a ``manifest.json`` (``manifest.py`` reads them). A
factory validates its configuration and raises ``ValueError`` saying what is wrong; it imports
its protocol library (the ``edge`` extra) only when called, so the agent starts without it when
no such connector is configured.

>>> sorted(CONNECTORS)
['modbus', 'mqtt', 'opcua']
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from atoll.edge.connectors import modbus, mqtt, opcua
from atoll.edge.port import Connector

CONNECTORS: dict[str, Callable[[Mapping[str, Any]], Connector]] = {
    "modbus": modbus.build,
    "mqtt": mqtt.build,
    "opcua": opcua.build,
}
