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
