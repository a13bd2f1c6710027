"""The configuration file: paths relative to it, secrets from a file, clear errors."""

from __future__ import annotations

import pytest
import yaml

from atoll.core.errors import InvalidInput
from atoll.edge.config import load_config


def test_relative_paths_and_secret_file(tmp_path):
    (tmp_path / "s").write_text("abc\n")
    (tmp_path / "edge.yaml").write_text(
        yaml.safe_dump(
            {
                "platform": "mqtt://localhost",
                "gateway": {"id": "gw", "secret_file": "s"},
                "buffer": {"dir": "data"},
            }
        )
    )
    cfg = load_config(tmp_path / "edge.yaml")
    assert cfg.buffer.dir == tmp_path / "data"
    link = cfg.link()
    assert (link.secret, link.port, link.tls) == ("abc", 1883, False)


def test_missing_secret_file_is_explained(tmp_path):
    (tmp_path / "edge.yaml").write_text(
        yaml.safe_dump(
            {
                "platform": "mqtts://localhost",
                "gateway": {"id": "gw", "secret_file": "nope"},
                "buffer": {"dir": "data"},
            }
        )
    )
    with pytest.raises(InvalidInput, match="cannot read gateway.secret_file"):
        load_config(tmp_path / "edge.yaml").link()


def test_not_a_mapping(tmp_path):
    (tmp_path / "edge.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(InvalidInput, match="expected a mapping"):
        load_config(tmp_path / "edge.yaml")


def test_the_examples_in_docs_edge_md_are_valid():
    """Every YAML block of docs/EDGE.md is a valid configuration (or a valid part of one)."""
    import re
    from pathlib import Path

    from atoll.edge.agent import build_connectors, build_detection
    from atoll.edge.config import parse_config
    from atoll.edge.connectors import CONNECTORS

    text = (Path(__file__).resolve().parents[2] / "docs" / "EDGE.md").read_text()
    blocks = [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", text, re.DOTALL)]
    assert len(blocks) >= 2
    base = blocks[0]
    cfg = parse_config(base, "docs/EDGE.md")
    assert build_connectors(cfg.connectors, CONNECTORS)
    for extra in blocks[1:]:
        cfg = parse_config({**base, **extra}, "docs/EDGE.md")
        if cfg.detection.enabled:

            class Sink:
                async def put(self, readings):
                    return None

            build_detection(cfg.detection, Sink(), cfg.gateway.id, None, lambda _: None)
