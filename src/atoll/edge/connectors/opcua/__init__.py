"""OPC UA client connector (asyncua): data-change subscriptions per node group, method calls
as commands, Basic256Sha256 security, reconnect with resubscribe.

>>> c = build({"url": "opc.tcp://127.0.0.1:4840", "devices": [{"id": "press-1"}],
...            "groups": [{"nodes": [{"node": "ns=2;i=2", "device": "press-1", "metric": "t"}]}]})
>>> c.name, [d.id for d in c.devices()]
('opcua', ['press-1'])
>>> build({"url": "http://x", "devices": [{"id": "d"}], "groups": []})  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
ValueError: opcua connector configuration is invalid: url: String should match pattern ...
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from atoll.edge.connectors.config import parse
from atoll.edge.connectors.opcua.config import OpcUaConfig
from atoll.edge.port import Connector


def build(config: Mapping[str, Any]) -> Connector:
    cfg = parse(OpcUaConfig, config, "opcua")
    try:
        from atoll.edge.connectors.opcua.connector import OpcUaConnector
    except ImportError as e:  # the edge extra is not installed
        raise ValueError(
            f"the opcua connector needs asyncua: pip install 'atoll[edge]' ({e})"
        ) from e
    return OpcUaConnector(cfg)
