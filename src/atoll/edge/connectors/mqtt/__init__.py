"""Local MQTT connector (paho): devices on the gateway's LAN publish to a local broker; each
message is acknowledged to that broker only after the agent's buffer took its readings.

>>> c = build({"broker": "mqtt://127.0.0.1:1883", "devices": [{"id": "meter-1"}],
...            "topics": [{"topic": "lan/{device}/telemetry"}]})
>>> c.name, [d.id for d in c.devices()]
('mqtt', ['meter-1'])
>>> build({"broker": "mqtt://b", "devices": [{"id": "m"}],
...        "topics": [{"topic": "lan/+/x"}]})  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
ValueError: mqtt connector configuration is invalid: topics.0: topic 'lan/+/x': name the device ...
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from atoll.edge.connectors.config import parse
from atoll.edge.connectors.mqtt.config import MqttConfig
from atoll.edge.port import Connector


def build(config: Mapping[str, Any]) -> Connector:
    from atoll.edge.connectors.mqtt.connector import MqttConnector  # paho: a core dependency

    return MqttConnector(parse(MqttConfig, config, "mqtt"))
