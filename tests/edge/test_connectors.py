"""Every connector type in CONNECTORS is a folder with a manifest naming it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import atoll.edge.connectors as pkg
from atoll.edge.connectors import CONNECTORS

ROOT = Path(pkg.__file__).parent


@pytest.mark.parametrize("kind", sorted(CONNECTORS))
def test_each_type_has_a_manifest(kind):
    manifest = json.loads((ROOT / kind / "manifest.json").read_text())
    assert manifest["type"] == kind
    assert manifest["title"] and manifest["description"] and manifest["version"]


@pytest.mark.parametrize("kind", sorted(CONNECTORS))
def test_bad_settings_raise_value_error(kind):
    with pytest.raises(ValueError):
        CONNECTORS[kind]({"type": kind, "name": "x", "no_such_setting": 1})
