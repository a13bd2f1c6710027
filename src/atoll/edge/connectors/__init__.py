"""Connector types the agent can run, composed explicitly: type name → factory.

A factory takes one entry of the configuration's ``connectors`` list as a mapping (``type``,
``name`` and the type's own settings) and returns a ``Connector`` (``atoll.edge.port``); it
raises ``ValueError`` (pydantic's ``ValidationError`` is one) when the settings are wrong, so
``atoll edge check`` and a desired twin with a bad entry are refused with the reason. Each type
lives in its own folder here with a ``manifest.json`` (``tests/edge/test_connectors.py`` checks
that every entry has one).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from atoll.edge.connectors import sim
from atoll.edge.port import Connector

ConnectorFactory = Callable[[Mapping[str, Any]], Connector]

CONNECTORS: dict[str, ConnectorFactory] = {
    "sim": sim.build,
}
