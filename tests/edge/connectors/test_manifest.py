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
    edge = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    edge = set(edge["optional-dependencies"]["edge"]) | set(edge["dependencies"])
    for requirement in m.requirements:
        assert requirement in edge, f"{requirement} is not pinned in pyproject.toml"


@pytest.mark.parametrize("kind", sorted(CONNECTORS))
def test_the_agent_entry_keys_are_accepted_and_a_wrong_type_refused(kind):
    # the agent passes its whole entry of the ``connectors`` list: type, name, settings
    try:
        CONNECTORS[kind]({"type": kind, "name": "x"})
    except ValueError as e:  # settings without a default are missing, nothing else
        problems = str(e).split(": ", 1)[1].split("; ")
        assert all(p.endswith("Field required") for p in problems), problems
    with pytest.raises(ValueError, match="type"):
        CONNECTORS[kind]({"type": "other", "name": "x"})


def test_a_broken_manifest_is_reported_with_its_path(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps({"name": "x", "version": "one"}))
    with pytest.raises(ValueError, match="manifest.json: invalid connector manifest"):
        manifest.load(tmp_path)
