"""Every connector configuration in docs/EDGE_CONNECTORS.md builds, and the page covers every
connector: the examples are YAML blocks whose first line is ``# connector: NAME``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from atoll.edge.connectors import CONNECTORS

DOC = Path(__file__).resolve().parents[3] / "docs" / "EDGE_CONNECTORS.md"
BLOCK = re.compile(r"```yaml\n# connector: (\w+)\n(.*?)```", re.DOTALL)
EXAMPLES = BLOCK.findall(DOC.read_text(encoding="utf-8"))
#: certificate files the OPC UA example names; the test makes them under tmp_path
FILES = "/etc/atoll/edge/"


def test_every_connector_has_an_example():
    assert sorted(name for name, _ in EXAMPLES) == sorted(CONNECTORS)


@pytest.mark.parametrize(("name", "text"), EXAMPLES, ids=[n for n, _ in EXAMPLES])
def test_example_builds(name, text, tmp_path):
    for path in set(re.findall(re.escape(FILES) + r"[\w.-]+", text)):
        (tmp_path / Path(path).name).write_bytes(b"")  # Security checks the files exist
    config = yaml.safe_load(text.replace(FILES, f"{tmp_path}/"))
    connector = CONNECTORS[name](config)
    assert connector.name == config["name"]
    assert [d.id for d in connector.devices()] == [d["id"] for d in config["devices"]]
