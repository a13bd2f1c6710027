"""The composed connector types keep the factory contract the agent relies on: a setting a
type does not know is a ``ValueError`` naming it (``atoll edge check`` and a desired twin with a
bad entry are refused with that reason), and the sim connector's manifest matches its code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import atoll.edge.connectors as pkg
from atoll.edge.connectors import CONNECTORS, sim


@pytest.mark.parametrize("kind", sorted(CONNECTORS))
def test_unknown_settings_raise_value_error_naming_them(kind):
    with pytest.raises(ValueError, match="no_such_setting"):
        CONNECTORS[kind]({"type": kind, "name": "x", "no_such_setting": 1})


def test_sim_manifest_matches_its_code():
    doc = json.loads((Path(pkg.__file__).parent / "sim" / "manifest.json").read_text())
    assert doc["name"] == "sim" and CONNECTORS["sim"] is sim.build
    module, _, attr = doc["config"].partition(":")
    assert module == sim.__name__ and getattr(sim, attr) is sim.SimSettings
    assert doc["requirements"] == [] and doc["commands"] == ["ping"]
