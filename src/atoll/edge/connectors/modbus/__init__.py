"""Modbus TCP and RTU connector (pymodbus): polls register maps, writes points on command.

>>> c = build({"name": "line-1", "link": {"type": "tcp", "host": "127.0.0.1"},
...            "devices": [{"id": "meter-1", "points": [{"name": "v", "address": 0}]}]})
>>> c.name, [d.id for d in c.devices()]
('line-1', ['meter-1'])
>>> build({"link": {"type": "tcp"}, "devices": []})  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
ValueError: modbus connector configuration is invalid: link.tcp.host: Field required; devices: ...
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from atoll.edge.connectors.config import parse
from atoll.edge.connectors.modbus.config import ModbusConfig
from atoll.edge.port import Connector


def build(config: Mapping[str, Any]) -> Connector:
    cfg = parse(ModbusConfig, config, "modbus")
    try:
        from atoll.edge.connectors.modbus.connector import ModbusConnector
    except ImportError as e:  # the edge extra is not installed
        raise ValueError(
            f"the modbus connector needs pymodbus: pip install 'atoll[edge]' ({e})"
        ) from e
    return ModbusConnector(cfg)
