"""Every connector folder has a valid manifest that matches its code (as tests/solutions does
for the sector templates)."""

from __future__ import annotations

import importlib
import json
import tomllib
from pathlib import Path

import pytest
from pydantic import BaseModel

from atoll.edge.connectors import CONNECTORS, manifest

FOLDERS = manifest.folders()
ROOT = Path(__file__).resolve().parents[3]
COMMAND_KINDS = {"register_write", "coil_write", "method_call", "publish"}


def test_every_folder_is_composed_and_every_composed_connector_has_a_folder():
    assert {f.name for f in FOLDERS} == set(CONNECTORS)


@pytest.mark.parametrize("folder", FOLDERS, ids=[f.name for f in FOLDERS])
def test_manifest_validates_and_matches_the_code(folder):
    m = manifest.load(folder)
    assert m.name == folder.name
    model = m.config_model()
    assert issubclass(model, BaseModel)
    assert model.__module__.startswith(f"atoll.edge.connectors.{m.name}")
    package = importlib.import_module(f"atoll.edge.connectors.{m.name}")
    assert CONNECTORS[m.name] is package.build
    assert set(m.commands) <= COMMAND_KINDS, m.commands
    edge = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    edge = set(edge["optional-dependencies"]["edge"]) | set(edge["dependencies"])
    for requirement in m.requirements:
        assert requirement in edge, f"{requirement} is not pinned in pyproject.toml"


def test_a_broken_manifest_is_reported_with_its_path(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps({"name": "x", "version": "one"}))
    with pytest.raises(ValueError, match="manifest.json: invalid connector manifest"):
        manifest.load(tmp_path)
