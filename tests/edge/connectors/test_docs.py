"""Every connector configuration in docs/EDGE_CONNECTORS.md builds, and the page has one for each
connector it documents: the examples are YAML blocks of one ``connectors`` entry each, starting
with ``type: NAME``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from atoll.edge.connectors import CONNECTORS

DOC = Path(__file__).resolve().parents[3] / "docs" / "EDGE_CONNECTORS.md"
BLOCK = re.compile(r"```yaml\n(type: (\w+)\n.*?)```", re.DOTALL)
EXAMPLES = [(name, text) for text, name in BLOCK.findall(DOC.read_text(encoding="utf-8"))]
#: certificate files the OPC UA example names; the test makes them under tmp_path
FILES = "/etc/atoll/edge/"


def test_every_documented_connector_has_an_example():
    assert sorted(name for name, _ in EXAMPLES) == ["modbus", "mqtt", "opcua"]
    assert {name for name, _ in EXAMPLES} <= set(CONNECTORS)


@pytest.mark.parametrize(("name", "text"), EXAMPLES, ids=[n for n, _ in EXAMPLES])
def test_example_builds(name, text, tmp_path):
    for path in set(re.findall(re.escape(FILES) + r"[\w.-]+", text)):
        (tmp_path / Path(path).name).write_bytes(b"")  # Security checks the files exist
    config = yaml.safe_load(text.replace(FILES, f"{tmp_path}/"))
    connector = CONNECTORS[name](config)
    assert connector.name == config["name"]
    assert [d.id for d in connector.devices()] == [d["id"] for d in config["devices"]]
